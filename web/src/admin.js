// The admin dashboard: rooms, participants and tracks, egress and injections per room,
// recordings, jobs, webhook deliveries and system health, over the REST API with an admin token.
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

// A room's block is built once and kept: its forms keep what the user typed (and the
// focus) across refreshes; only its header, tables and the source list are redrawn.
const roomViews = new Map();
const hlsLinks = new Map(); // egress id -> signed playlist URL (GET .../hls-url)
const ACTIVE = ['starting', 'running', 'stopping'];
const path = (...parts) => parts.map(encodeURIComponent).join('/');
const secs = (s) => (s ? `${s.toFixed(1)} s` : '');

function submitter(form, label, fn) {
  const error = el('p', { role: 'alert', class: 'form-error' });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    try { await fn(); $('status').textContent = `${label}: done`; await refresh(); }
    catch (e) { error.textContent = e.message; $('status').textContent = `${label}: ${e.message}`; }
  });
  return error;
}

function egressForm(room) {
  const source = el('select', { name: 'source' }, el('option', { value: '' }, 'Whole room (composite)'));
  const output = el('select', { name: 'output' },
    el('option', { value: 'file:mp4' }, 'File, MP4 (H264 + AAC)'),
    el('option', { value: 'file:webm' }, 'File, WebM (VP8 + Opus)'),
    el('option', { value: 'file:mkv' }, 'File, MKV (H264 + Opus)'),
    el('option', { value: 'rtmp' }, 'RTMP'),
    el('option', { value: 'hls' }, 'HLS'));
  const size = el('select', { name: 'size' },
    el('option', { value: '1280x720' }, '1280 × 720'),
    el('option', { value: '640x360' }, '640 × 360'),
    el('option', { value: '1920x1080' }, '1920 × 1080'));
  const rtmpUrl = el('input', { name: 'rtmpUrl', type: 'url', placeholder: 'rtmp://host/app/stream-key', autocomplete: 'off' });
  const rtmpLabel = el('label', { hidden: '' }, 'RTMP URL', rtmpUrl);
  const hlsWindow = el('input', { name: 'hlsWindow', type: 'number', min: '0', max: '10000', value: '0' });
  const windowLabel = el('label', { hidden: '' }, 'Live window (segments, 0 = keep all)', hlsWindow);
  output.addEventListener('change', () => {
    rtmpLabel.hidden = output.value !== 'rtmp';
    rtmpUrl.required = output.value === 'rtmp';
    windowLabel.hidden = output.value !== 'hls';
  });
  const form = el('form', { class: 'inline', 'aria-label': `Start egress in ${room}` },
    el('label', {}, 'Source', source), el('label', {}, 'Output', output), rtmpLabel, windowLabel,
    el('label', {}, 'Size', size), el('button', { type: 'submit' }, 'Start egress'));
  form.append(submitter(form, `Start egress in ${room}`, () => {
    const [kind, format] = output.value.split(':');
    const [width, height] = size.value.split('x').map(Number);
    const body = { output: kind, width, height };
    if (format) body.format = format;
    if (kind === 'rtmp') body.rtmpUrl = rtmpUrl.value.trim();
    if (kind === 'hls' && Number(hlsWindow.value)) body.hlsWindow = Number(hlsWindow.value);
    if (source.value) Object.assign(body, { source: 'participant', identity: source.value });
    return api(`/api/rooms/${path(room)}/egress`, { method: 'POST', body: JSON.stringify(body) });
  }));
  return { form, source };
}

function injectionForm(room) {
  const source = el('input', { name: 'source', required: '', autocomplete: 'off',
    placeholder: 'media/intro.mp4 or https://…, rtmp://…, rtsp://…' });
  const name = el('input', { name: 'name', autocomplete: 'off', maxlength: '64', placeholder: 'Intro' });
  const loop = el('input', { name: 'loop', type: 'checkbox' });
  const form = el('form', { class: 'inline', 'aria-label': `Play media into ${room}` },
    el('label', {}, 'Media (path under the media root, or URL)', source), el('label', {}, 'Name', name),
    el('label', { class: 'check' }, loop, 'Loop'), el('button', { type: 'submit' }, 'Play into room'));
  form.append(submitter(form, `Play media into ${room}`, () => {
    const body = { source: source.value.trim(), loop: loop.checked };
    if (name.value.trim()) body.name = name.value.trim();
    return api(`/api/rooms/${path(room)}/injections`, { method: 'POST', body: JSON.stringify(body) });
  }));
  return form;
}

function roomView(room) {
  let view = roomViews.get(room);
  if (view) return view;
  const egress = egressForm(room);
  view = {
    heading: el('h3', {}), recordRoom: el('span'), people: el('div'), egressList: el('div'),
    injectionList: el('div'), sourceSelect: egress.source, sources: '',
  };
  view.article = el('article', { 'aria-label': `Room ${room}` }, view.heading, view.recordRoom, view.people,
    el('section', { 'aria-label': `Egress of ${room}` }, el('h4', {}, 'Egress (stream out / room composite)'),
      egress.form, view.egressList),
    el('section', { 'aria-label': `Injections of ${room}` }, el('h4', {}, 'Play media into the room'),
      injectionForm(room), view.injectionList));
  roomViews.set(room, view);
  return view;
}

function updateSources(view, people) {
  // Rebuilt only when the participants change, so an open select is left alone.
  const key = people.map((p) => p.identity).join('\n');
  if (key === view.sources) return;
  view.sources = key;
  const select = view.sourceSelect;
  const chosen = select.value;
  select.replaceChildren(el('option', { value: '' }, 'Whole room (composite)'),
    ...people.map((p) => el('option', { value: p.identity }, `Participant ${p.name || p.identity} (${p.identity})`)));
  select.value = people.some((p) => p.identity === chosen) ? chosen : '';
}

async function download(eg) {
  const r = await fetch(`/api/rooms/${path(eg.room, 'egress', eg.id, 'file')}`, { headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    throw new Error(body.error?.message ?? `download failed: ${r.status}`);
  }
  const url = URL.createObjectURL(await r.blob());
  const a = el('a', { href: url, download: eg.file.split('/').pop() });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

async function hlsLink(eg) {
  // HLS players cannot send headers: the server signs a short-lived URL for this egress only.
  const signed = await api(`/api/rooms/${path(eg.room, 'egress', eg.id, 'hls-url')}`);
  hlsLinks.set(eg.id, new URL(signed.url, location.href).href);
}

function egressTarget(eg) {
  if (eg.output === 'file') return `file ${eg.format ?? ''}${eg.file ? `: ${eg.file.split('/').pop()}` : ''}`;
  if (eg.output === 'rtmp') return `RTMP ${eg.rtmp_target ?? ''}`;
  return 'HLS';
}

function egressTable(room, list) {
  return table(['Egress', 'Source', 'Output', 'State', 'Duration', 'Size', 'Error', ''], list.map((eg) => {
    const live = ACTIVE.includes(eg.state);
    const hls = hlsLinks.get(eg.id);
    return [eg.id.slice(0, 8), eg.source === 'room' ? 'whole room' : eg.identity, egressTarget(eg),
      el('span', { 'data-state': eg.state }, eg.state),
      secs(eg.duration_s ?? (eg.started_at && live ? Date.now() / 1000 - eg.started_at : 0)),
      eg.size_bytes ? `${Math.round(eg.size_bytes / 1024)} KiB` : '',
      el('span', { class: 'error' }, eg.error ?? ''),
      el('span', {},
        live && eg.state !== 'stopping' ? act(`Stop egress ${eg.id.slice(0, 8)}`, () =>
          api(`/api/rooms/${path(room, 'egress', eg.id, 'stop')}`, { method: 'POST' })) : null,
        eg.output === 'file' && eg.state === 'completed' && eg.file ? act(`Download egress ${eg.id.slice(0, 8)}`, () => download(eg)) : null,
        eg.output === 'hls' && eg.state !== 'failed' && !hls ? act(`HLS link ${eg.id.slice(0, 8)}`, () => hlsLink(eg)) : null,
        hls ? el('a', { href: hls, target: '_blank', rel: 'noopener' }, `HLS playlist ${eg.id.slice(0, 8)}`) : null)];
  }), `Egress of ${room}`);
}

function injectionTable(room, list) {
  return table(['Participant', 'Name', 'Source', 'State', 'Played', 'Error', ''], list.map((inj) => [
    inj.identity, inj.name, `${inj.source}${inj.loop ? ' (loop)' : ''}`,
    el('span', { 'data-state': inj.state }, inj.state),
    `${secs(inj.played_s)}${inj.loops ? `, ${inj.loops} loop${inj.loops > 1 ? 's' : ''}` : ''}`,
    el('span', { class: 'error' }, inj.error ?? ''),
    ACTIVE.includes(inj.state) && inj.state !== 'stopping' ? act(`Stop injection ${inj.identity}`, () =>
      api(`/api/rooms/${path(room, 'injections', inj.id, 'stop')}`, { method: 'POST' })) : ''],
  ), `Injections of ${room}`);
}

function byRoom(list) {
  const out = new Map();
  for (const x of list.slice().reverse()) { // newest first, the last 10 of each room
    const rows = out.get(x.room) ?? [];
    if (rows.length < 10) rows.push(x);
    out.set(x.room, rows);
  }
  return out;
}

async function renderRooms() {
  const [rooms, egress, injections] = await Promise.all([
    api('/api/rooms?expand=stats'), api('/api/egress'), api('/api/injections')]);
  const egressByRoom = byRoom(egress);
  const injectionsByRoom = byRoom(injections);
  const articles = [];
  for (const room of rooms) {
    // One snapshot of every room, its participants and their tracks' stats: a participant
    // or room gone between two requests cannot fail the refresh.
    const people = room.participants;
    const rows = [];
    for (const p of people) {
      const tracks = el('ul', {}, ...p.tracks.map((t) => {
        const s = t.stats ?? {};
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
    const view = roomView(room.name);
    view.heading.textContent = `${room.name} (${people.length} / ${room.max_participants})`;
    view.recordRoom.replaceChildren(act(`Record room ${room.name}`, () => api(`/api/rooms/${room.name}/recordings`,
      { method: 'POST', body: JSON.stringify({ mode: 'room' }) })));
    view.people.replaceChildren(table(['Name', 'Identity', 'Tracks', 'Actions'], rows, `Participants of ${room.name}`));
    updateSources(view, people);
    const eg = egressByRoom.get(room.name) ?? [];
    view.egressList.replaceChildren(eg.length ? egressTable(room.name, eg) : el('p', {}, 'No egress.'));
    const inj = injectionsByRoom.get(room.name) ?? [];
    view.injectionList.replaceChildren(inj.length ? injectionTable(room.name, inj) : el('p', {}, 'No injections.'));
    articles.push(view.article);
  }
  for (const name of roomViews.keys()) if (!rooms.some((r) => r.name === name)) roomViews.delete(name);
  const box = $('rooms');
  const same = articles.length === box.children.length && articles.every((a, i) => box.children[i] === a);
  if (!same) box.replaceChildren(...(articles.length ? articles : [el('p', {}, 'No rooms.')]));
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
        ['starting', 'running'].includes(r.state) ? act(`Stop recording ${r.identity}`, () =>
          api(`/api/rooms/${r.room}/recordings/${r.id}/stop`, { method: 'POST' })) : null,
        r.state === 'completed' && r.file ? act(`Play ${r.identity}`, () => play(r)) : null)]), 'Recordings'));
}

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

// One refresh at a time: a click's refresh during the timer's (or the other way round)
// runs once more after it, so an older snapshot is never drawn over a newer one.
let inFlight = null;
let wanted = false;
function refresh() {
  if (inFlight) { wanted = true; return inFlight; }
  inFlight = (async () => {
    try {
      do {
        wanted = false;
        await Promise.all([renderSystem(), renderRooms(), renderRecordings(), renderJobs(), renderHooks()]);
      } while (wanted);
    } finally { inFlight = null; }
  })();
  return inFlight;
}

async function start() {
  await refresh();
  $('login').hidden = true;
  $('dash').hidden = false;
  // The next refresh is due 2 s after this one ended.
  const tick = () => setTimeout(() => refresh()
    .catch((e) => { $('status').textContent = e.message; }).finally(tick), 2000);
  tick();
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  token = $('token').value.trim();
  try { await start(); sessionStorage.setItem('mediaplane-admin-token', token); }
  catch (e) { $('login-error').textContent = e.message; }
});
if (token) start().catch(() => { $('login').hidden = false; });
