// The call page: join a room over mediaplane signaling (docs/signaling.md),
// publish microphone and camera with mediasoup-client, show everyone else.
import { Device } from 'mediasoup-client';

const $ = (id) => document.getElementById(id);
const state = { ws: null, nextId: 1, pending: new Map(), device: null, send: null, recv: null,
  producers: {}, consumers: new Map(), peers: new Map(), room: '', token: '', closing: false,
  // Tracks announced between our join and our receive transport: consumed once it exists.
  early: new Map(), statusLog: [], statusTimes: [],
  // What the user has on: every (re)join publishes exactly this, nothing more.
  wanted: { audio: true, video: true }, media: null, screenTrack: null,
  // A viewer asks for no device; a refused or missing one leaves the user receiving,
  // told why (mediaProblem), and a rejoin does not ask again after a refusal.
  viewer: false, mediaRefused: false, mediaProblem: null,
  // The one reconnect loop: `running` while it works, `again` when asked again meanwhile.
  link: { running: false, again: false, attempts: 0, sockets: 0, rejoin: false, silent: false },
  ended: false,
  // The session's resume token (docs/signaling.md#resuming-a-session): a lost socket
  // resumes the same peer with it; cleared when only a rejoin will do.
  resumeToken: null, resumes: 0, iceRestarts: 0, probing: false, pingRttMs: null,
  videoCodec: 'vp8', cameraCodec: null };

const REQUEST_TIMEOUT_MS = 10000;
const CONNECT_TIMEOUT_MS = 10000;
const ICE_RESTART_AFTER_MS = 2000; // a transport 'disconnected' this long gets an ICE restart
const ICE_RESTART_EVERY_MS = 4000; // ... and again while it is not back
const ICE_RESTARTS_BEFORE_REJOIN = 4; // then the page rejoins
// The page checks its socket with a `ping` this often; one not answered in time is lost
// (the browser itself notices a dead TCP connection only much later).
// The timeout follows the answers' round trip (4 x its smoothed value, 1.2 s to 5 s): on a
// busy machine or a link whose queue is full of video a live socket answers late, and
// taking it for dead would make the page resume again and again (measured: test_web_call
// resumed 3 times in a minute at load average 25 with a fixed 1.2 s).
// Every 0.5 s (was 1 s): a network change is noticed 0.5 s sooner (measured: the dead socket
// was found 2.06 s after the change, media back at 2.52 s, against the 3 s the issue asks).
const HEARTBEAT_MS = 500;
const HEARTBEAT_TIMEOUT_MS = 1200;
const HEARTBEAT_TIMEOUT_MAX_MS = 5000;
const heartbeatTimeout = () => Math.min(HEARTBEAT_TIMEOUT_MAX_MS,
  Math.max(HEARTBEAT_TIMEOUT_MS, 4 * (state.pingRttMs ?? 0)));
// A quick new attempt beats a slow SYN retransmit. Not several at once: a browser opens
// one WebSocket to a host at a time (RFC 6455 4.1), so racing sockets queue instead (a
// race measured 2.7 s from the restore to the resume after a 25 s outage).
const RESUME_CONNECT_TIMEOUT_MS = 2000;
// A media path that breaks often means the network changed under the socket too: the
// page pings at once and resumes on a new socket when this passes without an answer.
const PROBE_TIMEOUT_MS = 1000;
// The page closes a socket it gives up with this code: the server keeps the session.
const CLOSE_RESUMING = 4000;
const RESUME_REFUSED = ['session_expired', 'session_ended', 'resume_token_used', 'resume_mismatch'];
// The page rejoins after a close code below 4000 and after this one (the server ended
// the session because its media connection was lost); the other 4xxx mean: stay out.
const CLOSE_MEDIA_LOST = 4010;
// Simulcast (docs/video-quality.md): the camera in three VP8 layers, lowest first, each
// with three temporal layers; the server picks one per subscriber from its tile size and
// tells us (producerLayers) which we need not encode. Screen share: one layer, sharp text.
const CAMERA_ENCODINGS = [
  { rid: 'r0', scaleResolutionDownBy: 4, maxBitrate: 80000, scalabilityMode: 'L1T3' },
  { rid: 'r1', scaleResolutionDownBy: 2, maxBitrate: 500000, scalabilityMode: 'L1T3' },
  { rid: 'r2', scaleResolutionDownBy: 1, maxBitrate: 1500000, scalabilityMode: 'L1T3' },
];
// `?simulcast=0`: the camera as one full-size encoding (what a client without simulcast
// sends; benchmarks/video_links.py compares the two).
const SINGLE_ENCODING = [{ maxBitrate: 1500000 }];
const SIMULCAST = new URLSearchParams(location.search).get('simulcast') !== '0';
// VP9 (the deployment's MEDIAPLANE_VIDEO_CODEC, the join reply's videoCodec): one SVC
// encoding, three spatial layers each half the next (the server picks one per subscriber
// the same way); H.264: the simulcast layers above, without temporal layers (not every
// H.264 encoder has them).
const SVC_ENCODING = [{ scalabilityMode: 'L3T3_KEY', maxBitrate: 1500000 }];
const H264_ENCODINGS = CAMERA_ENCODINGS.map(({ scalabilityMode, ...rest }) => rest);
const SCREEN_ENCODINGS = [{ maxBitrate: 2500000 }];
const AUDIO_OPTIONS = { opusFec: true, opusDtx: true, opusStereo: false };
const CAMERA_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });
// 0.5 s, 1 s, 2 s, 4 s, then every 5 s, each with up to 20 % jitter; resuming retries
// faster (at once, then every 0.5 s): the session waits only its grace period.
const backoff = (n) => Math.min(500 * 2 ** n, 5000) * (1 + Math.random() * 0.2);
const resumeBackoff = (n) => (n === 0 ? 50 : 500) * (1 + Math.random() * 0.2);

function setStatus(text) {
  $('status').textContent = text;
  state.statusLog.push(text); // what the user was told, in order (read by tests)
  state.statusTimes.push(Math.round(performance.now()));
}

function request(method, data = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
  const id = state.nextId++;
  return new Promise((resolve, reject) => {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      reject(new Error('not connected')); return;
    }
    const timer = setTimeout(() => {
      state.pending.delete(id); reject(new Error(`${method}: no answer`));
    }, timeoutMs);
    state.pending.set(id, { resolve, reject, method, timer });
    state.ws.send(JSON.stringify({ id, method, data }));
  });
}

function failPending(why) {
  for (const p of state.pending.values()) { clearTimeout(p.timer); p.reject(new Error(why)); }
  state.pending.clear();
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
  if (consumer.kind === 'video') { watchTile(media); tiles.sent.delete(consumer.id); scheduleTileReport(); }
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
    case 'peerReconnecting':
    case 'peerReconnected':
      document.getElementById(`tile-${data.peerId}`)?.classList
        .toggle('reconnecting', event === 'peerReconnecting');
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
      tiles.sent.delete(data.consumerId);
      break;
    case 'producerLayers':
      onProducerLayers(data);
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
      state.resumeToken = null; // the router is gone: only a rejoin will do
      reconnect(`Reconnecting: ${data.reason}`);
      break;
    default:
      break;
  }
}

// `iceServers`: the TURN servers of the join reply, with this join's credentials: the
// way through a network that blocks UDP or allows only TCP 443.
function transportParams(t) {
  return { id: t.transportId, iceParameters: t.iceParameters, iceCandidates: t.iceCandidates,
    dtlsParameters: t.dtlsParameters, sctpParameters: t.sctpParameters ?? undefined,
    iceServers: state.iceServers };
}

async function setupMedia() {
  const joined = await request('join', { displayName: $('name').value });
  state.peerId = joined.peerId;
  state.iceServers = joined.iceServers ?? [];
  state.resumeToken = joined.resumeToken ?? null;
  state.videoCodec = ['vp8', 'vp9', 'h264'].includes(joined.videoCodec) ? joined.videoCodec : 'vp8';
  for (const p of joined.peers) { state.peers.set(p.peerId, p); tile(p.peerId, p.displayName); }
  for (const p of joined.producers) state.early.set(p.producerId, p);
  state.device = new Device();
  await state.device.load({ routerRtpCapabilities: joined.routerRtpCapabilities });
  const sendInfo = await request('createTransport', { direction: 'send' });
  state.send = state.device.createSendTransport(transportParams(sendInfo));
  watchTransport(state.send);
  state.send.on('connect', ({ dtlsParameters }, ok, fail) =>
    request('connectTransport', { transportId: state.send.id, dtlsParameters }).then(ok, fail));
  state.send.on('produce', ({ kind, rtpParameters, appData }, ok, fail) =>
    request('produce', { transportId: state.send.id, kind, rtpParameters, source: appData.source,
      paused: Boolean(appData.paused), ...(appData.height ? { videoHeight: appData.height } : {}) })
      .then(({ producerId }) => ok({ id: producerId }), fail));
  const recvInfo = await request('createTransport', { direction: 'recv' });
  state.recv = state.device.createRecvTransport(transportParams(recvInfo));
  watchTransport(state.recv);
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
  await publish();
  setStatus(`In room ${state.room} as ${$('name').value}${state.viewer ? ' (viewer)' : ''}`);
}

// Why this page can have no camera or microphone at all, or null. Browsers offer
// navigator.mediaDevices only in a secure context: https, or http on loopback.
function mediaUnavailable() {
  if (navigator.mediaDevices?.getUserMedia) return null;
  if (!window.isSecureContext) {
    return `Camera and microphone are unavailable: this page was opened over ${location.protocol}//${location.host}, `
      + 'which browsers do not treat as secure (only https, or http on this machine\'s loopback, is). '
      + 'Open it over https to send; you can still join as a viewer and receive the others.';
  }
  return 'Camera and microphone are unavailable: this browser gives the page no access to them. '
    + 'You can still join as a viewer and receive the others.';
}

function mediaMessage(e) {
  const receiving = 'you are in the room and receive the others; nobody sees or hears you.';
  switch (e?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return `Camera and microphone were refused: ${receiving} To send, allow them in the browser's site settings and join again.`;
    case 'NotFoundError':
    case 'OverconstrainedError':
      return `No camera or microphone found: ${receiving}`;
    case 'NotReadableError':
    case 'AbortError':
      return `The camera or microphone could not be started (in use by another program?): ${receiving}`;
    default:
      return `Camera and microphone unavailable (${e?.message ?? e}): ${receiving}`;
  }
}

// Tell the user what is wrong with their media (null: nothing), and offer only the
// buttons that can work.
function showMediaProblem(text) {
  state.mediaProblem = text;
  $('media-error').textContent = text ?? '';
  $('media-error').hidden = !text;
  $('toggle-mic').disabled = !localTrack('audio');
  $('toggle-cam').disabled = !localTrack('video');
  $('share').disabled = state.viewer || !navigator.mediaDevices?.getDisplayMedia;
}

// The camera and microphone are asked for once and kept across rejoins (a rejoin
// must not re-prompt, nor turn anything back on). A viewer asks for nothing; a
// refusal, or no device, leaves the page without media (null), receiving.
async function localMedia() {
  if (state.viewer) { showMediaProblem(mediaUnavailable()); return null; }
  const live = (t) => t.readyState === 'live';
  const tracks = state.media?.getTracks() ?? [];
  if (tracks.length && tracks.every(live)) return state.media;
  if (state.mediaRefused) return null;
  tracks.forEach((t) => t.stop());
  state.media = null;
  const unavailable = mediaUnavailable();
  if (unavailable) { state.mediaRefused = true; showMediaProblem(unavailable); return null; }
  const want = {
    audio: $('mic').value ? { deviceId: { exact: $('mic').value } } : true,
    video: { ...CAMERA_CONSTRAINTS, ...($('cam').value ? { deviceId: { exact: $('cam').value } } : {}) },
  };
  try {
    state.media = await navigator.mediaDevices.getUserMedia(want);
  } catch (e) {
    if (e.name === 'NotAllowedError' || e.name === 'SecurityError') {
      state.mediaRefused = true;
      showMediaProblem(mediaMessage(e));
      return null;
    }
    for (const kind of ['audio', 'video']) { // one device missing or busy: the other alone
      try { state.media = await navigator.mediaDevices.getUserMedia({ [kind]: want[kind] }); break; }
      catch { /* try the next */ }
    }
    if (!state.media) { showMediaProblem(mediaMessage(e)); return null; }
  }
  if (!localTrack('video')) showMediaProblem('No camera: the others hear you but do not see you.');
  else if (!localTrack('audio')) showMediaProblem('No microphone: the others see you but do not hear you.');
  else showMediaProblem(null);
  tile('me', `${$('name').value} (you)`).querySelector('video').srcObject = state.media;
  return state.media;
}

const localTrack = (kind) =>
  state.media?.[kind === 'audio' ? 'getAudioTracks' : 'getVideoTracks']()[0];

// Publish what the user has on, and only that: a muted microphone or a stopped
// camera is produced paused (the server creates it paused: nothing is forwarded)
// with its track disabled (silence, black), before a packet leaves.
async function publish() {
  await localMedia();
  for (const kind of ['audio', 'video']) {
    const off = !state.wanted[kind];
    const track = localTrack(kind);
    if (!track) continue; // a viewer, or no such device: receive only
    track.enabled = !off;
    const options = kind === 'audio' ? { codecOptions: AUDIO_OPTIONS } : cameraOptions();
    const height = kind === 'video' ? track.getSettings().height : undefined;
    const producer = await state.send.produce({ track, stopTracks: false, ...options,
      appData: { source: kind, paused: off, height } });
    if (off) producer.pause();
    state.producers[kind] = producer;
    await applyWanted(kind); // the user may have pressed the button meanwhile
  }
  if (state.screenTrack?.readyState === 'live') await produceScreen();
}

// The camera's codec and layers: the one the server asks for when this browser and the
// server both have it (device.rtpCapabilities is what both have), else VP8 simulcast.
function cameraOptions() {
  const codecOptions = { videoGoogleStartBitrate: 1000 };
  const wanted = `video/${state.videoCodec}`;
  const codec = state.device.rtpCapabilities.codecs.find((c) => c.mimeType.toLowerCase() === wanted
    && (wanted !== 'video/vp9' || String(c.parameters?.['profile-id'] ?? 0) === '0'));
  const name = codec ? state.videoCodec : 'vp8';
  state.cameraCodec = name;
  if (!SIMULCAST) return { encodings: SINGLE_ENCODING, codecOptions, ...(codec ? { codec } : {}) };
  if (name === 'vp9') return { codec, encodings: SVC_ENCODING, codecOptions };
  if (name === 'h264') return { codec, encodings: H264_ENCODINGS, codecOptions };
  return { encodings: CAMERA_ENCODINGS, codecOptions };
}

// Screen share keeps detail over motion: the encoder drops frames, not resolution.
async function produceScreen() {
  state.screenTrack.contentHint = 'detail';
  state.producers.screen = await state.send.produce({ track: state.screenTrack, stopTracks: false,
    encodings: SCREEN_ENCODINGS, appData: { source: 'screen', height: state.screenTrack.getSettings().height } });
}

// Dynacast: the server says the highest camera layer anyone receives; the encoder stops
// the layers above it (and starts them again when someone wants them).
function onProducerLayers({ producerId, spatialLayer }) {
  const producer = Object.values(state.producers).find((p) => p?.id === producerId);
  if (!producer || producer.closed || producer.rtpParameters.encodings.length < 2) return;
  producer.setMaxSpatialLayer(Math.max(0, spatialLayer))
    .catch((e) => console.warn('setMaxSpatialLayer', e));
  state.maxSpatialLayer = { ...state.maxSpatialLayer, [producer.appData.source]: Math.max(0, spatialLayer) };
}

// Adaptive stream: each video tile's size (device pixels) and whether it is seen go to
// the server, which picks the layer for that size and pauses what nobody looks at.
const tiles = { sent: new Map(), timer: null };
// Sizes settle over 100 ms of resizing; a tile coming into view is told at once.
const scheduleTileReport = () => { clearTimeout(tiles.timer); tiles.timer = setTimeout(reportTiles, 100); };
const tileSizes = new ResizeObserver((entries) => {
  if (entries.some((e) => e.contentRect.height > 0 && e.target.dataset.shown !== 'true')) reportTiles();
  else scheduleTileReport();
  for (const e of entries) e.target.dataset.shown = String(e.contentRect.height > 0);
});
const tileViews = new IntersectionObserver((entries) => {
  for (const e of entries) e.target.dataset.inView = String(e.isIntersecting);
  scheduleTileReport();
});
document.addEventListener('visibilitychange', scheduleTileReport);

function watchTile(video) {
  if (video.dataset.watched) return;
  video.dataset.watched = 'true';
  tileSizes.observe(video);
  tileViews.observe(video);
}

function reportTiles() {
  for (const [id, entry] of state.consumers) {
    if (entry.consumer.kind !== 'video' || entry.consumer.closed) continue;
    const video = document.querySelector(`#tile-${entry.peerId} video`);
    const visible = Boolean(video) && !document.hidden && video.dataset.inView !== 'false'
      && video.clientHeight > 0;
    const width = visible ? Math.round(video.clientWidth * devicePixelRatio) : 0;
    const height = visible ? Math.round(video.clientHeight * devicePixelRatio) : 0;
    const key = `${visible} ${width}x${height}`;
    if (tiles.sent.get(id) === key) continue;
    tiles.sent.set(id, key);
    request('trackSettings', { consumerId: id, visible, width, height })
      .catch(() => tiles.sent.delete(id));
  }
}

// Bring one producer in line with what the user wants (the button's state).
async function applyWanted(kind) {
  const on = state.wanted[kind];
  const track = localTrack(kind);
  if (track) track.enabled = on;
  const p = state.producers[kind];
  if (!p || p.closed || p.paused === !on) return;
  if (on) { p.resume(); await request('resumeProducer', { producerId: p.id }); }
  else { p.pause(); await request('pauseProducer', { producerId: p.id }); }
}

// A transport whose media path is down (watchTransport restarts its ICE; a resume does).
const broken = (t) => ['failed', 'disconnected'].includes(t.connectionState);

// A transport that fails, or stays disconnected for ICE_RESTART_AFTER_MS, gets an ICE
// restart (`restartIce`: new ICE parameters from the server), again every
// ICE_RESTART_EVERY_MS while it is not back; after ICE_RESTARTS_BEFORE_REJOIN the page
// rejoins. Without a socket the resume restarts ICE (see runLink).
function watchTransport(t) {
  let timer = null;
  let tries = 0;
  const current = () => !t.closed && (t === state.send || t === state.recv);
  const attempt = async () => {
    timer = null;
    if (!current() || !broken(t)) return;
    if (tries >= ICE_RESTARTS_BEFORE_REJOIN) {
      state.resumeToken = null;
      reconnect('Reconnecting: the media connection was lost');
      return;
    }
    timer = setTimeout(attempt, ICE_RESTART_EVERY_MS);
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN || state.link.running) return;
    tries += 1;
    setStatus('Reconnecting media...');
    try {
      await restartIce(t);
    } catch (e) {
      // no answer: the heartbeat finds a dead socket; the resume restarts ICE
    }
  };
  t.on('connectionstatechange', (s) => {
    if (!current()) { clearTimeout(timer); timer = null; return; }
    if (s === 'disconnected' || s === 'failed') probeSocket();
    if (s === 'connected') {
      clearTimeout(timer); timer = null;
      if (tries > 0) setStatus(`Reconnected in room ${state.room} as ${$('name').value}`);
      tries = 0;
    } else if (s === 'failed' && !timer) timer = setTimeout(attempt, 0);
    else if (s === 'disconnected' && !timer) timer = setTimeout(attempt, ICE_RESTART_AFTER_MS);
  });
}

// Is the socket still there? (a network change kills it silently, the heartbeat would
// notice only later); no answer in PROBE_TIMEOUT_MS: resume on a new one.
function probeSocket() {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || state.link.running || state.probing) return;
  state.probing = true;
  request('ping', {}, Math.max(PROBE_TIMEOUT_MS, heartbeatTimeout())).then(() => { state.probing = false; }, () => {
    state.probing = false;
    if (ws === state.ws && !state.closing) reconnect('Connection lost; reconnecting...', { silent: true });
  });
}

async function restartIce(t, iceParameters) {
  const ice = iceParameters ?? (await request('restartIce', { transportId: t.id })).iceParameters;
  await t.restartIce({ iceParameters: ice });
  state.iceRestarts += 1;
}

// A `ping` every HEARTBEAT_MS: a socket that does not answer in heartbeatTimeout() is
// dead (a network cut), the page resumes on a new one.
function heartbeat(ws) {
  const beat = setInterval(() => {
    if (ws !== state.ws || ws.readyState !== WebSocket.OPEN) { clearInterval(beat); return; }
    if (state.link.running) return;
    const sent = performance.now();
    request('ping', {}, heartbeatTimeout()).then(() => {
      const rtt = performance.now() - sent;
      state.pingRttMs = state.pingRttMs === null ? rtt : 0.8 * state.pingRttMs + 0.2 * rtt;
    }, () => {
      if (ws === state.ws && !state.closing) reconnect('Connection lost; reconnecting...', { silent: true });
    });
  }, HEARTBEAT_MS);
}

function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/ws/rooms/${encodeURIComponent(state.room)}?access_token=${state.token}`;
}

// Open the signaling socket; resolves when it is open (then bind()).
function connect(timeoutMs = CONNECT_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(socketUrl());
    state.ws = ws;
    state.link.sockets += 1;
    const timer = setTimeout(() => { reject(new Error('the server did not answer')); ws.close(); },
      timeoutMs);
    ws.onopen = () => { clearTimeout(timer); bind(ws); resolve(); };
    ws.onclose = () => {
      clearTimeout(timer);
      if (ws === state.ws) { failPending('the connection closed'); reject(new Error('cannot reach the server')); }
    };
  });
}

// An open socket becomes the page's: its messages, its loss, its heartbeat. A socket the
// page has given up (not state.ws) is ignored; its later loss hands over to reconnect().
function bind(ws) {
  heartbeat(ws);
  ws.onmessage = (msg) => {
    if (ws !== state.ws) return;
    const m = JSON.parse(msg.data);
    if ('event' in m) { onEvent(m.event, m.data); return; }
    const p = state.pending.get(m.id);
    if (!p) return;
    state.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.ok) p.resolve(m.data); else p.reject(new Error(`${m.error.code}: ${m.error.message}`));
  };
  ws.onclose = (e) => {
    if (ws !== state.ws) return;
    failPending('the connection closed');
    if (state.closing) return;
    if (e.code < 4000) reconnect('Connection lost; reconnecting...');
    else if (e.code === CLOSE_MEDIA_LOST) {
      state.resumeToken = null; // the server ended the session
      reconnect(`Reconnecting: ${e.reason}`);
    }
    else { state.ended = true; setStatus(`Disconnected: ${e.reason}`); } // kicked, replaced...
  };
}

// Forget the signaling socket (its handlers go first: its close is not news).
function dropConnection() {
  const ws = state.ws;
  state.ws = null;
  failPending('reconnecting');
  if (ws) { ws.onopen = ws.onmessage = ws.onclose = null; ws.close(CLOSE_RESUMING, 'resuming'); }
}

function resetMedia() {
  state.send?.close(); state.recv?.close();
  state.send = state.recv = null;
  state.producers = {};
  state.consumers.clear();
  state.early.clear();
  document.querySelectorAll('.tile').forEach((t) => { if (t.id !== 'tile-me') t.remove(); });
}

// The one owner of reconnecting: whoever notices a loss (socket closed or silent,
// `rejoin` event, a transport ICE restarts cannot bring back) calls reconnect(); while
// the loop runs a new call only asks it to go round once more. Each round drops the
// socket, waits (backoff), connects, then resumes the session (same peer, same
// transports: only an ICE restart) while it has a resume token, else drops the
// transports and joins again. A refused resume (the grace period is over...) says so
// and joins anew.
function reconnect(why, { silent = false } = {}) {
  if (state.closing || state.ended) return;
  if (silent) state.link.silent = true;
  setStatus(why);
  state.link.again = true;
  if (!state.link.running) runLink();
}

async function runLink() {
  const { link } = state;
  link.running = true;
  let attempt = 0;
  try {
    while (link.again && !state.closing && !state.ended) {
      link.again = false;
      const resuming = Boolean(state.resumeToken && state.send && state.recv);
      dropConnection();
      if (!resuming) resetMedia();
      await sleep(resuming ? resumeBackoff(attempt) : backoff(attempt));
      attempt += 1;
      link.attempts += 1;
      if (state.closing || state.ended) break;
      try {
        await connect(resuming ? RESUME_CONNECT_TIMEOUT_MS : CONNECT_TIMEOUT_MS);
        if (!resuming) { await setupMedia(); continue; }
        if (await resume()) { link.silent = false; continue; }
        setStatus('Session expired; joining again...');
        resetMedia();
        await setupMedia();
      } catch (e) {
        if (state.closing || state.ended) break;
        setStatus(`Reconnect failed (${e.message}); retrying...`);
        link.again = true;
      }
    }
  } finally {
    link.running = false;
  }
}

// Take the session back on the new socket; false when the server refused (join anew).
async function resume() {
  // ICE is restarted when the socket died silently (no answer to a ping: a new address,
  // a NAT rebinding has most likely broken the media path too, before ICE noticed) or a
  // transport is not connected. A socket the server closed (an instance that went away:
  // the TCP connection ended at once) says nothing against the media path, which goes
  // on untouched (an ICE restart there cost up to 0.8 s of video, measured in
  // test_web_failover.py).
  const restart = state.link.silent
    || [state.send, state.recv].some(broken);
  let reply;
  try {
    reply = await request('resume', { resumeToken: state.resumeToken, restartIce: restart });
  } catch (e) {
    const code = e.message.split(':')[0];
    if (RESUME_REFUSED.includes(code)) { state.resumeToken = null; return false; }
    throw e;
  }
  state.resumeToken = reply.resumeToken;
  state.resumes += 1;
  await applySnapshot(reply);
  setStatus(`Reconnected in room ${state.room} as ${$('name').value}`);
  return true;
}

// The room as the server has it now: what changed during the gap is caught up.
async function applySnapshot(reply) {
  if (reply.iceServers) state.iceServers = reply.iceServers; // fresh TURN credentials
  for (const t of [state.send, state.recv]) {
    const entry = reply.transports.find((x) => x.transportId === t.id);
    if (!entry) { state.resumeToken = null; throw new Error('a transport is gone'); }
    if (reply.iceServers) await t.updateIceServers({ iceServers: state.iceServers });
    // A transport that never connected (a viewer's send side) has no ICE to restart.
    if (entry.iceParameters && t.connectionState !== 'new') await restartIce(t, entry.iceParameters);
  }
  const peers = new Map(reply.peers.map((p) => [p.peerId, p]));
  for (const id of [...state.peers.keys()]) {
    if (!peers.has(id)) { state.peers.delete(id); removeTile(id); }
  }
  for (const p of peers.values()) {
    state.peers.set(p.peerId, p);
    tile(p.peerId, p.displayName).classList.toggle('reconnecting', Boolean(p.reconnecting));
  }
  const kept = new Set(reply.consumers.map((c) => c.consumerId));
  for (const [id, entry] of [...state.consumers]) {
    if (!kept.has(id)) { entry.consumer.close(); state.consumers.delete(id); }
  }
  const consumed = new Set([...state.consumers.values()].map((c) => c.producerId));
  for (const p of reply.producers) {
    document.getElementById(`tile-${p.peerId}`)?.querySelector('.label')
      .classList.toggle('muted', p.paused);
    if (!consumed.has(p.producerId)) {
      await consume(p).catch((e) => setStatus(`could not receive a track: ${e.message}`));
    }
  }
  // Our own tracks: one the server closed meanwhile is gone; a button pressed during
  // the gap is applied now.
  const own = new Map(reply.ownProducers.map((p) => [p.producerId, p]));
  for (const [kind, producer] of Object.entries(state.producers)) {
    const server = own.get(producer.id);
    if (!server) { producer.close(); delete state.producers[kind]; continue; }
    if (kind !== 'screen' && server.paused === state.wanted[kind]) {
      await request(state.wanted[kind] ? 'resumeProducer' : 'pauseProducer', { producerId: producer.id });
    }
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
    state.viewer = $('viewer').checked;
    state.mediaRefused = false; // a new join may ask again
    state.token = await token(state.room, $('name').value);
    state.closing = state.ended = false;
    dropConnection();
    await connect();
    $('join-form').hidden = true;
    $('call').hidden = false;
    showMediaProblem(state.mediaProblem);
    await setupMedia();
  } catch (e) {
    // Once the form is hidden its error line is too: say it where the user looks.
    if ($('join-form').hidden) setStatus(`Could not join: ${e.message}`);
    else $('form-error').textContent = e.message;
  }
});

function toggle(button, kind, labels) {
  button.addEventListener('click', async () => {
    state.wanted[kind] = !state.wanted[kind];
    button.textContent = state.wanted[kind] ? labels[0] : labels[1];
    button.setAttribute('aria-pressed', String(!state.wanted[kind]));
    await applyWanted(kind).catch((e) => setStatus(`could not ${labels[state.wanted[kind] ? 1 : 0]}: ${e.message}`));
  });
}
toggle($('toggle-mic'), 'audio', ['Mute mic', 'Unmute mic']);
toggle($('toggle-cam'), 'video', ['Stop camera', 'Start camera']);

async function stopSharing() {
  const producer = state.producers.screen;
  delete state.producers.screen;
  state.screenTrack?.stop();
  state.screenTrack = null;
  $('share').textContent = 'Share screen'; $('share').setAttribute('aria-pressed', 'false');
  if (producer && !producer.closed) {
    producer.close();
    await request('closeProducer', { producerId: producer.id }).catch(() => {});
  }
}

$('share').addEventListener('click', async () => {
  if (state.screenTrack) { await stopSharing(); return; }
  let display;
  try {
    display = await navigator.mediaDevices.getDisplayMedia({ video: true });
  } catch (e) {
    setStatus(`Screen not shared: ${e.message}`); return;
  }
  state.screenTrack = display.getVideoTracks()[0];
  state.screenTrack.addEventListener('ended', () => { stopSharing(); });
  $('share').textContent = 'Stop sharing'; $('share').setAttribute('aria-pressed', 'true');
  if (state.send) await produceScreen();
});

$('leave').addEventListener('click', async () => {
  state.closing = true;
  await request('leave').catch(() => {});
  dropConnection();
  resetMedia();
  state.media?.getTracks().forEach((t) => t.stop());
  state.screenTrack?.stop();
  state.media = state.screenTrack = null;
  $('call').hidden = true; $('join-form').hidden = false;
  document.getElementById('tile-me')?.remove();
  showMediaProblem(null);
});

function viewerChosen() {
  $('mic').disabled = $('cam').disabled = $('viewer').checked;
}
$('viewer').addEventListener('change', viewerChosen);

const params = new URLSearchParams(location.search);
if (params.get('room')) $('room').value = params.get('room');
if (params.get('name')) $('name').value = params.get('name');
if (params.get('viewer') === '1') $('viewer').checked = true;
const unavailable = mediaUnavailable();
if (unavailable) { // said before joining, and the join is a viewer's
  $('media-note').textContent = unavailable;
  $('media-note').hidden = false;
  $('viewer').checked = true;
} else {
  listDevices().catch(() => {});
}
viewerChosen();
window.mediaplane = state; // for tests and debugging: the page's state
state.request = request; // and its signaling requests (the server checks each)
