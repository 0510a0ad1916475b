// The admin dashboard: rooms, participants and tracks, recordings, jobs,
// webhook deliveries and system health, over the REST API with an admin token.
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem('mediaplane-admin-token') ?? '';

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { authorization: `Bearer ${token}`,
    'content-type': 'application/json', ...(options.headers ?? {}) } });
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    throw new Error(body.error?.message ?? `${r.status} ${r.statusText}`);
  }
  return r.status === 204 ? null : r.json();
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

function table(headers, rows, label) {
  return el('table', { 'aria-label': label },
    el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', {}, c))))));
}

function act(label, fn) {
  return el('button', { type: 'button', onclick: async () => {
    try { await fn(); $('status').textContent = `${label}: done`; await refresh(); }
    catch (e) { $('status').textContent = `${label}: ${e.message}`; }
  } }, label);
}

const kbps = (b) => `${Math.round((b ?? 0) / 1000)} kbit/s`;

async function renderRooms() {
  const rooms = await api('/api/rooms');
  const blocks = [];
  for (const room of rooms) {
    const people = await api(`/api/rooms/${room.name}/participants`);
    const rows = [];
    for (const p of people) {
      const stats = p.tracks.length ? await api(`/api/rooms/${room.name}/participants/${p.identity}/stats`).catch(() => []) : [];
      const tracks = el('ul', {}, ...p.tracks.map((t) => {
        const s = stats.find((x) => x.producerId === t.producerId) ?? {};
        return el('li', {}, `${t.source}${t.paused ? ' (muted)' : ''}: ${kbps(s.bitrate)}, lost ${s.packetsLost ?? 0}, score ${s.score ?? '?'} `,
          act(t.paused ? `Unmute ${p.identity} ${t.source}` : `Mute ${p.identity} ${t.source}`, () =>
            api(`/api/rooms/${room.name}/participants/${p.identity}/tracks/${t.producerId}/mute`,
              { method: 'POST', body: JSON.stringify({ muted: !t.paused }) })));
      }));
      rows.push([p.name || p.identity, p.identity, tracks, el('span', {},
        act(`Record ${p.identity}`, () => api(`/api/rooms/${room.name}/recordings`,
          { method: 'POST', body: JSON.stringify({ identity: p.identity }) })),
        act(`Remove ${p.identity}`, () => api(`/api/rooms/${room.name}/participants/${p.identity}`, { method: 'DELETE' })))]);
    }
    blocks.push(el('article', { 'aria-label': `Room ${room.name}` },
      el('h3', {}, `${room.name} (${people.length} / ${room.max_participants})`),
      act(`Record room ${room.name}`, () => api(`/api/rooms/${room.name}/recordings`,
        { method: 'POST', body: JSON.stringify({ mode: 'room' }) })),
      table(['Name', 'Identity', 'Tracks', 'Actions'], rows, `Participants of ${room.name}`)));
  }
  $('rooms').replaceChildren(...(blocks.length ? blocks : [el('p', {}, 'No rooms.')]));
}

async function play(rec) {
  const r = await fetch(`/api/rooms/${rec.room}/recordings/${rec.id}/file`, { headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`download failed: ${r.status}`);
  const url = URL.createObjectURL(await r.blob());
  const media = el(rec.kinds.includes('video') ? 'video' : 'audio', { controls: '', src: url, 'aria-label': `Recording ${rec.id}` });
  const link = el('a', { href: url, download: rec.file.split('/').pop() }, `Download ${rec.file.split('/').pop()}`);
  $('player').replaceChildren(media, link);
}

async function renderRecordings() {
  const recs = (await api('/api/recordings')).reverse();
  $('recordings').replaceChildren(table(['Room', 'Who', 'State', 'Duration', 'Size', 'Start latency', ''],
    recs.map((r) => [r.room, r.identity, el('span', { 'data-state': r.state }, r.state),
      r.duration_s ? `${r.duration_s.toFixed(1)} s` : '', r.size_bytes ? `${Math.round(r.size_bytes / 1024)} KiB` : '',
      r.start_latency_s ? `${Math.round(r.start_latency_s * 1000)} ms` : '',
      el('span', {},
        ['starting', 'recording'].includes(r.state) ? act(`Stop recording ${r.identity}`, () =>
          api(`/api/rooms/${r.room}/recordings/${r.id}/stop`, { method: 'POST' })) : null,
        r.state === 'completed' && r.file ? act(`Play ${r.identity}`, () => play(r)) : null)]), 'Recordings'));
}

async function download(path, name) {
  const r = await fetch(path, { headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`download failed: ${r.status}`);
  const link = el('a', { href: URL.createObjectURL(await r.blob()), download: name }, `Download ${name}`);
  $('player').replaceChildren(link);
  link.click();
}

const live = (state) => ['starting', 'active'].includes(state);

async function renderEgress() {
  const list = (await api('/api/egress')).slice(-20).reverse();
  $('egresses').replaceChildren(table(['Room', 'Source', 'Output', 'State', 'Error', ''],
    list.map((e) => {
      const base = `/api/rooms/${e.room}/egress/${e.id}`;
      const target = e.output === 'rtmp' ? e.rtmp_target : e.output === 'file' ? e.format : 'HLS';
      return [e.room, e.source === 'room' ? 'room composite' : e.identity, `${e.output} ${target ?? ''}`,
        el('span', { 'data-state': e.state }, e.state), e.error ?? '',
        el('span', {},
          live(e.state) ? act(`Stop egress ${e.id}`, () => api(`${base}/stop`, { method: 'POST' })) : null,
          e.state === 'completed' && e.file ? act(`Download egress ${e.id}`, () =>
            download(`${base}/file`, e.file.split('/').pop())) : null,
          e.hls_folder ? el('a', { href: `${base}/hls/playlist.m3u8?access_token=${encodeURIComponent(token)}` },
            `HLS playlist ${e.id}`) : null)];
    }), 'Egresses'));
}

async function renderInjections() {
  const list = (await api('/api/injections')).slice(-20).reverse();
  $('injections').replaceChildren(table(['Room', 'Participant', 'Source', 'State', 'Played', 'Error', ''],
    list.map((i) => [i.room, `${i.name} (${i.identity})`, `${i.source}${i.loop ? ' (loop)' : ''}`,
      el('span', { 'data-state': i.state }, i.state),
      i.played_s ? `${i.played_s.toFixed(1)} s` : '', i.error ?? '',
      live(i.state) ? act(`Stop injection ${i.id}`, () =>
        api(`/api/rooms/${i.room}/injections/${i.id}/stop`, { method: 'POST' })) : '']), 'Injections'));
}

function submit(form, label, request) {
  $(form).addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const rec = await request();
      $('status').textContent = `${label}: ${rec.state}${rec.error ? ` (${rec.error})` : ''}`;
      await refresh();
    } catch (e) { $('status').textContent = `${label}: ${e.message}`; }
  });
}

submit('egress-form', 'Start egress', () => {
  const body = { source: $('eg-source').value, output: $('eg-output').value, format: $('eg-format').value };
  if (body.source === 'participant') body.identity = $('eg-identity').value.trim();
  if (body.output === 'rtmp') body.rtmpUrl = $('eg-rtmp').value.trim();
  return api(`/api/rooms/${encodeURIComponent($('eg-room').value.trim())}/egress`,
    { method: 'POST', body: JSON.stringify(body) });
});

submit('inject-form', 'Start injection', () => {
  const body = { source: $('in-source').value.trim(), loop: $('in-loop').checked };
  if ($('in-name').value.trim()) body.name = $('in-name').value.trim();
  return api(`/api/rooms/${encodeURIComponent($('in-room').value.trim())}/injections`,
    { method: 'POST', body: JSON.stringify(body) });
});

async function renderJobs() {
  const jobs = (await api('/api/media/jobs')).slice(-20).reverse();
  $('jobs').replaceChildren(table(['Job', 'Kind', 'State', 'Reason'], jobs.map((j) =>
    [j.id, j.kind, j.state, j.history.at(-1)?.reason ?? '']), 'Media jobs'));
}

async function renderHooks() {
  const hooks = (await api('/api/webhooks/deliveries?limit=20'));
  $('hooks').replaceChildren(table(['Event', 'Attempt', 'Status', 'Delivered'], hooks.map((h) =>
    [h.event, String(h.attempt), String(h.status ?? h.error), h.delivered ? 'yes' : 'no']), 'Webhook deliveries'));
}

async function renderSystem() {
  const s = await api('/api/system');
  const workers = (s.sfu.workers ?? []).map((w) => `pid ${w.pid}: ${w.routers} routers, ${w.consumers} consumers`);
  $('system').replaceChildren(el('ul', {},
    el('li', {}, `SFU: ${s.sfu.ok ? 'up' : `down (${s.sfu.error})`}; ${workers.join('; ')}`),
    el('li', {}, `Redis: ${s.redis.ok ? 'up' : 'down'}`),
    el('li', {}, `Media manager: ${s.media.ok ? `up, ${s.media.running_jobs} jobs running` : `down (${s.media.error})`}`),
    el('li', {}, `Load: ${s.load.map((x) => x.toFixed(2)).join(' ')} on ${s.cpus} CPUs`)));
}

async function refresh() {
  await Promise.all([renderSystem(), renderRooms(), renderRecordings(), renderEgress(),
    renderInjections(), renderJobs(), renderHooks()]);
}

async function start() {
  await refresh();
  $('login').hidden = true;
  $('dash').hidden = false;
  setInterval(() => refresh().catch((e) => { $('status').textContent = e.message; }), 2000);
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  token = $('token').value.trim();
  try { await start(); sessionStorage.setItem('mediaplane-admin-token', token); }
  catch (e) { $('login-error').textContent = e.message; }
});
if (token) start().catch(() => { $('login').hidden = false; });
