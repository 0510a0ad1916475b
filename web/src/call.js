// The call page: join a room over mediaplane signaling (docs/signaling.md),
// publish microphone and camera with mediasoup-client, show everyone else.
import { Device } from 'mediasoup-client';

const $ = (id) => document.getElementById(id);
const state = { ws: null, nextId: 1, pending: new Map(), device: null, send: null, recv: null,
  producers: {}, consumers: new Map(), peers: new Map(), room: '', token: '', closing: false,
  // Tracks announced between our join and our receive transport: consumed once it exists.
  early: new Map(), statusLog: [] };

function setStatus(text) {
  $('status').textContent = text;
  state.statusLog.push(text); // what the user was told, in order (read by tests)
}

function request(method, data = {}) {
  const id = state.nextId++;
  return new Promise((resolve, reject) => {
    state.pending.set(id, { resolve, reject, method });
    state.ws.send(JSON.stringify({ id, method, data }));
  });
}

function tile(peerId, name) {
  let el = document.getElementById(`tile-${peerId}`);
  if (!el) {
    el = document.createElement('figure');
    el.className = 'tile';
    el.id = `tile-${peerId}`;
    el.dataset.peerId = peerId;
    el.innerHTML = '<video autoplay playsinline muted></video><audio autoplay></audio>' +
      '<figcaption class="label"></figcaption><span class="quality" aria-label="connection quality"></span>';
    $('tiles').append(el);
  }
  el.querySelector('.label').textContent = name;
  el.setAttribute('aria-label', name);
  return el;
}

function removeTile(peerId) { document.getElementById(`tile-${peerId}`)?.remove(); }

async function consume(producer) {
  if (producer.peerId === state.peerId) return;
  if (!state.recv) { state.early.set(producer.producerId, producer); return; }
  const data = await request('consume', { transportId: state.recv.id, producerId: producer.producerId,
    rtpCapabilities: state.device.rtpCapabilities });
  const consumer = await state.recv.consume({ id: data.consumerId, producerId: data.producerId,
    kind: data.kind, rtpParameters: data.rtpParameters });
  state.consumers.set(consumer.id, { consumer, peerId: data.peerId, producerId: data.producerId });
  const peer = state.peers.get(data.peerId);
  const el = tile(data.peerId, peer?.displayName ?? peer?.identity ?? 'guest');
  const media = el.querySelector(consumer.kind === 'video' ? 'video' : 'audio');
  const stream = media.srcObject ?? new MediaStream();
  stream.addTrack(consumer.track);
  media.srcObject = stream;
  if (producer.paused) el.querySelector('.label').classList.add('muted');
  await request('resumeConsumer', { consumerId: consumer.id });
}

function onEvent(event, data) {
  switch (event) {
    case 'peerJoined':
      state.peers.set(data.peer.peerId, data.peer);
      tile(data.peer.peerId, data.peer.displayName);
      break;
    case 'peerLeft':
      state.peers.delete(data.peerId);
      removeTile(data.peerId);
      break;
    case 'newProducer':
      consume(data).catch((e) => setStatus(`could not receive a track: ${e.message}`));
      break;
    case 'producerClosed':
      state.early.delete(data.producerId);
      break;
    case 'consumerClosed':
      state.consumers.get(data.consumerId)?.consumer.close();
      state.consumers.delete(data.consumerId);
      break;
    case 'producerPaused':
    case 'producerResumed': {
      const el = document.getElementById(`tile-${data.peerId}`);
      el?.querySelector('.label').classList.toggle('muted', event === 'producerPaused');
      if (el) el.dataset.muted = String(event === 'producerPaused');
      break;
    }
    case 'activeSpeaker':
      document.querySelectorAll('.tile.speaking').forEach((t) => t.classList.remove('speaking'));
      document.getElementById(`tile-${data.peerId}`)?.classList.add('speaking');
      break;
    case 'consumerScore': {
      const entry = state.consumers.get(data.consumerId);
      const q = document.querySelector(`#tile-${entry?.peerId} .quality`);
      if (q) q.textContent = `quality ${data.score?.score ?? '?'} / 10`;
      break;
    }
    case 'recording': {
      state.recordings ??= new Set();
      if (data.active) state.recordings.add(data.recordingId); else state.recordings.delete(data.recordingId);
      $('recording-indicator').hidden = state.recordings.size === 0;
      $('recording-indicator').textContent = `● Recording (${state.recordings.size})`;
      break;
    }
    case 'rejoin':
      setStatus(`Reconnecting: ${data.reason}`);
      rejoin();
      break;
    default:
      break;
  }
}

function transportParams(t) {
  return { id: t.transportId, iceParameters: t.iceParameters, iceCandidates: t.iceCandidates,
    dtlsParameters: t.dtlsParameters, sctpParameters: t.sctpParameters ?? undefined };
}

async function setupMedia() {
  const joined = await request('join', { displayName: $('name').value });
  state.peerId = joined.peerId;
  for (const p of joined.peers) { state.peers.set(p.peerId, p); tile(p.peerId, p.displayName); }
  for (const p of joined.producers) state.early.set(p.producerId, p);
  state.device = new Device();
  await state.device.load({ routerRtpCapabilities: joined.routerRtpCapabilities });
  const sendInfo = await request('createTransport', { direction: 'send' });
  state.send = state.device.createSendTransport(transportParams(sendInfo));
  state.send.on('connect', ({ dtlsParameters }, ok, fail) =>
    request('connectTransport', { transportId: state.send.id, dtlsParameters }).then(ok, fail));
  state.send.on('produce', ({ kind, rtpParameters, appData }, ok, fail) =>
    request('produce', { transportId: state.send.id, kind, rtpParameters, source: appData.source })
      .then(({ producerId }) => ok({ id: producerId }), fail));
  const recvInfo = await request('createTransport', { direction: 'recv' });
  state.recv = state.device.createRecvTransport(transportParams(recvInfo));
  state.recv.on('connect', ({ dtlsParameters }, ok, fail) =>
    request('connectTransport', { transportId: state.recv.id, dtlsParameters }).then(ok, fail));
  // Everyone's tracks at the join and those announced since (one that closed meanwhile
  // has left the queue), before our own camera: receiving does not wait on a permission
  // prompt.
  while (state.early.size) {
    const [id, p] = state.early.entries().next().value;
    state.early.delete(id);
    await consume(p).catch((e) => setStatus(`could not receive a track: ${e.message}`));
  }
  const media = await navigator.mediaDevices.getUserMedia({
    audio: $('mic').value ? { deviceId: { exact: $('mic').value } } : true,
    video: $('cam').value ? { deviceId: { exact: $('cam').value } } : true,
  });
  const me = tile('me', `${$('name').value} (you)`);
  me.querySelector('video').srcObject = media;
  state.producers.audio = await state.send.produce({ track: media.getAudioTracks()[0], appData: { source: 'audio' } });
  state.producers.video = await state.send.produce({ track: media.getVideoTracks()[0], appData: { source: 'video' } });
  setStatus(`In room ${state.room} as ${$('name').value}`);
}

function connect() {
  return new Promise((resolve, reject) => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws/rooms/${encodeURIComponent(state.room)}?access_token=${state.token}`);
    state.ws = ws;
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error('cannot reach the server'));
    ws.onmessage = (msg) => {
      const m = JSON.parse(msg.data);
      if ('event' in m) { onEvent(m.event, m.data); return; }
      const p = state.pending.get(m.id);
      if (!p) return;
      state.pending.delete(m.id);
      if (m.ok) p.resolve(m.data); else p.reject(new Error(`${m.error.code}: ${m.error.message}`));
    };
    ws.onclose = (e) => {
      if (state.closing) return;
      setStatus(e.code >= 4000 ? `Disconnected: ${e.reason}` : 'Connection lost; reconnecting...');
      if (e.code < 4000) setTimeout(() => rejoin(), 1000);
    };
  });
}

function resetMedia() {
  state.send?.close(); state.recv?.close();
  state.send = state.recv = null;
  state.consumers.clear();
  state.early.clear();
  document.querySelectorAll('.tile').forEach((t) => { if (t.id !== 'tile-me') t.remove(); });
}

async function rejoin() {
  resetMedia();
  try {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) await connect();
    await setupMedia();
  } catch (e) {
    setStatus(`Reconnect failed (${e.message}); retrying...`);
    setTimeout(() => rejoin(), 2000);
  }
}

async function token(room, name) {
  const fromLink = new URLSearchParams(location.search).get('token');
  if (fromLink) return fromLink;
  const r = await fetch('/api/dev/token', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ room, name }) });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error?.message ?? r.statusText);
  return body.token;
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, select] of [['audioinput', $('mic')], ['videoinput', $('cam')]]) {
    select.replaceChildren(...devices.filter((d) => d.kind === kind)
      .map((d, i) => new Option(d.label || `${kind} ${i + 1}`, d.deviceId)));
  }
}

$('join-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('form-error').textContent = '';
  try {
    state.room = $('room').value;
    state.token = await token(state.room, $('name').value);
    await connect();
    $('join-form').hidden = true;
    $('call').hidden = false;
    await setupMedia();
  } catch (e) {
    $('form-error').textContent = e.message;
  }
});

function toggle(button, kind, labels) {
  button.addEventListener('click', async () => {
    const p = state.producers[kind];
    if (!p) return;
    if (p.paused) { p.resume(); await request('resumeProducer', { producerId: p.id }); }
    else { p.pause(); await request('pauseProducer', { producerId: p.id }); }
    button.textContent = p.paused ? labels[1] : labels[0];
    button.setAttribute('aria-pressed', String(p.paused));
  });
}
toggle($('toggle-mic'), 'audio', ['Mute mic', 'Unmute mic']);
toggle($('toggle-cam'), 'video', ['Stop camera', 'Start camera']);

$('share').addEventListener('click', async () => {
  if (state.producers.screen) {
    await request('closeProducer', { producerId: state.producers.screen.id });
    state.producers.screen.close(); delete state.producers.screen;
    $('share').textContent = 'Share screen'; $('share').setAttribute('aria-pressed', 'false');
    return;
  }
  const display = await navigator.mediaDevices.getDisplayMedia({ video: true });
  state.producers.screen = await state.send.produce({ track: display.getVideoTracks()[0], appData: { source: 'screen' } });
  $('share').textContent = 'Stop sharing'; $('share').setAttribute('aria-pressed', 'true');
});

$('leave').addEventListener('click', async () => {
  state.closing = true;
  await request('leave').catch(() => {});
  state.ws.close();
  resetMedia();
  $('call').hidden = true; $('join-form').hidden = false;
  document.getElementById('tile-me')?.remove();
});

const params = new URLSearchParams(location.search);
if (params.get('room')) $('room').value = params.get('room');
if (params.get('name')) $('name').value = params.get('name');
listDevices().catch(() => {});
window.mediaplane = state; // for tests and debugging: the page's state
