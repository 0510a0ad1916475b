import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import {
  capAfter, capAfterFallBack, encodingBitrate, FELL_BACK_MS, FIRST_ROOM_FOR_MS, FrameRateFirst, hasRoom, RETRY_MS,
  climbCost, retryWait, room, ROOM_FOR_MS, temporalLayers,
} from '../src/framerate.js';

const producer = (bitrates = [100000, 300000, 900000]) => ({
  rtpParameters: { encodings: bitrates.map((_, i) => ({ rid: `r${i}`, scalabilityMode: 'L1T3' })) },
  getStats: async () => bitrates.map((bitrate, i) => ({ type: 'inbound-rtp', rid: `r${i}`, bitrate })),
});

function consumer(id = 'c1') {
  const c = new EventEmitter();
  Object.assign(c, { id, type: 'simulcast', kind: 'video', closed: false, observer: new EventEmitter(),
    preferredLayers: { spatialLayer: 2, temporalLayer: 2 }, currentLayers: null, set: [] });
  c.setPreferredLayers = async (layers) => { c.set.push(layers); c.preferredLayers = { temporalLayer: 2, ...layers }; };
  return c;
}

const flush = async () => { for (let i = 0; i < 5; i += 1) await new Promise(setImmediate); };

const transport = (available, send) => ({
  type: 'webrtc',
  getStats: async () => [{ type: 'webrtc-transport', availableOutgoingBitrate: available, sendBitrate: send }],
});

test('only a spatial layer above 0 without its top temporal layer lowers the cap', () => {
  const s = { wantedSpatial: 2, cap: 2, maxTemporal: 2 };
  assert.equal(capAfter({ spatialLayer: 1, temporalLayer: 0 }, s), 0);
  assert.equal(capAfter({ spatialLayer: 2, temporalLayer: 1 }, s), 1);
  assert.equal(capAfter({ spatialLayer: 1, temporalLayer: 2 }, s), undefined); // full rate
  assert.equal(capAfter({ spatialLayer: 0, temporalLayer: 0 }, s), undefined); // nothing lower
  assert.equal(capAfter(null, s), undefined);
  assert.equal(capAfter({ spatialLayer: 2, temporalLayer: 0 }, { ...s, cap: 1 }), undefined); // above the cap
});

test('temporal layers, encoding bitrates and room on the link', async () => {
  assert.equal(temporalLayers(producer()), 3);
  assert.equal(temporalLayers({ rtpParameters: { encodings: [{}] } }), 1);
  const p = producer();
  assert.equal(encodingBitrate(p, await p.getStats(), 1), 300000);
  assert.equal(encodingBitrate(p, await p.getStats(), 5), 0);
  assert.equal(hasRoom(await transport(700000, 300000).getStats(), 200000), true);
  assert.equal(hasRoom(await transport(600000, 300000).getStats(), 200000), false); // the margin
  assert.equal(hasRoom(await transport(600000, 500000).getStats(), 200000), false);
  assert.equal(hasRoom([{ type: 'webrtc-transport' }], 0), false);
  assert.equal(room(await transport(1300000, 300000).getStats()), 700000);
  assert.equal(room(await transport(300000, 300000).getStats()), 0);
  // A layer that sends nothing yet (just started) counts at its maxBitrate.
  const starting = { rtpParameters: { encodings: [{ rid: 'r0' }, { rid: 'r1', maxBitrate: 500000 }] } };
  assert.equal(encodingBitrate(starting, [{ type: 'inbound-rtp', rid: 'r1', bitrate: 0 }], 1), 500000);
  assert.equal(climbCost(p, await p.getStats(), 0), 200000);
  const justStarted = producer([100000, 3000, 0]);
  assert.equal(climbCost(justStarted, await justStarted.getStats(), 0), 100000); // not 0
  assert.deepEqual([0, 1, 2, 3, 9].map(retryWait), [0, RETRY_MS, 2 * RETRY_MS, 4 * RETRY_MS, 120000]);
});

// Ticks of the 1 s timer, each followed by the stats reads it awaits.
async function run(t, ms) {
  for (let i = 0; i < ms / 1000; i += 1) {
    t.mock.timers.tick(1000);
    await flush();
  }
}

test('a new consumer starts at its lowest layer and climbs one layer per stretch of room', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
  let link = transport(350000, 100000); // room for 169 kbit/s: not for layer 1's 200 more
  const f = new FrameRateFirst();
  const c = consumer();
  f.watch(c, producer(), { type: 'webrtc', getStats: async () => (await link.getStats()) });
  await flush();
  assert.deepEqual(c.set.at(-1), { spatialLayer: 0, temporalLayer: 2 });
  assert.equal(f.cap('c1'), 0);
  await run(t, 10000);
  assert.equal(f.cap('c1'), 0);
  link = transport(2000000, 100000);
  await run(t, FIRST_ROOM_FOR_MS - 1000);
  assert.equal(f.cap('c1'), 0); // room, but not for long enough yet
  await run(t, 2000);
  assert.equal(f.cap('c1'), 1);
  // The next climb (600 kbit/s more) waits for room with layer 1 sent.
  link = transport(1000000, 400000);
  await run(t, 10000);
  assert.equal(f.cap('c1'), 1);
  link = transport(1500000, 400000);
  await run(t, FIRST_ROOM_FOR_MS + 1000);
  assert.equal(f.cap('c1'), 2);
  assert.deepEqual(c.set.at(-1), { spatialLayer: 2, temporalLayer: 2 });
  f.close();
});

test('the room on one transport is shared out, cheapest first: what climbs together fits', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
  const link = transport(1300000, 300000); // 700 kbit/s of room
  const f = new FrameRateFirst();
  const small = producer([50000, 150000, 400000]);
  const [a, b, c] = ['a', 'b', 'c'].map(consumer);
  f.watch(a, producer(), link); // 200 kbit/s more
  f.watch(b, small, link); // 100 more
  f.watch(c, producer([100000, 900000, 2000000]), link); // 800 more: does not fit
  await run(t, FIRST_ROOM_FOR_MS + 1000);
  assert.deepEqual([f.cap('a'), f.cap('b'), f.cap('c')], [1, 1, 0]);
  f.close();
});

test('frame rate given up is capped after it settles, lifted again after a wait and room', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
  let link = transport(900000, 350000);
  const f = new FrameRateFirst();
  const c = consumer();
  f.watch(c, producer(), { type: 'webrtc', getStats: async () => (await link.getStats()) });
  await f.setWanted(c, 1);
  assert.equal(f.wanted('c1'), 1);
  await run(t, FIRST_ROOM_FOR_MS + 1000);
  assert.equal(f.cap('c1'), 1);
  assert.deepEqual(c.set.at(-1), { spatialLayer: 1, temporalLayer: undefined });
  // A passing step is not a cap: back to full rate before it settles.
  c.currentLayers = { spatialLayer: 1, temporalLayer: 0 };
  c.emit('layerschange', c.currentLayers);
  c.currentLayers = { spatialLayer: 1, temporalLayer: 2 };
  t.mock.timers.tick(3500);
  await flush();
  assert.equal(f.cap('c1'), 1);
  // Still a quarter of the rate after 3 s: capped to layer 0.
  link = transport(400000, 350000);
  c.currentLayers = { spatialLayer: 1, temporalLayer: 0 };
  c.emit('layerschange', c.currentLayers);
  t.mock.timers.tick(3500);
  await flush();
  assert.equal(f.cap('c1'), 0);
  assert.deepEqual(c.set.at(-1), { spatialLayer: 0, temporalLayer: undefined });
  assert.equal(f.wanted('c1'), 1); // dynacast keeps the publisher's layer 1 on
  // The wait is over but the link has no room for layer 1's 200 kbit/s more: stays.
  await run(t, RETRY_MS + 1000);
  assert.equal(f.cap('c1'), 0);
  link = transport(900000, 350000);
  await run(t, FIRST_ROOM_FOR_MS + 1000);
  assert.equal(f.cap('c1'), 0); // after a failure the room must last ROOM_FOR_MS
  await run(t, ROOM_FOR_MS - FIRST_ROOM_FOR_MS);
  assert.equal(f.cap('c1'), 1);
  assert.deepEqual(c.set.at(-1), { spatialLayer: 1, temporalLayer: undefined });
  f.close();
});

test('a consumer on a plain transport (a recording) is never capped', async () => {
  const f = new FrameRateFirst();
  const c = consumer();
  f.watch(c, producer(), { type: 'plain', getStats: async () => [] });
  assert.equal(f.cap('c1'), undefined);
  await f.setWanted(c, 2);
  assert.deepEqual(c.set.at(-1), { spatialLayer: 2, temporalLayer: undefined });
  f.close();
});

test('a spatial layer left soon after it was reached is a failed try: capped below it', async (t) => {
  const s = { wantedSpatial: 2, cap: 2 };
  const from = { spatialLayer: 1, at: 1000 };
  assert.equal(capAfterFallBack(from, { spatialLayer: 0, temporalLayer: 2 }, 1000 + FELL_BACK_MS - 1, s), 0);
  assert.equal(capAfterFallBack(from, { spatialLayer: 0, temporalLayer: 2 }, 1000 + FELL_BACK_MS + 1, s), undefined);
  assert.equal(capAfterFallBack(from, { spatialLayer: 1, temporalLayer: 0 }, 2000, s), undefined); // not lower
  assert.equal(capAfterFallBack(from, null, 2000, s), undefined); // paused: not a fall
  assert.equal(capAfterFallBack(from, { spatialLayer: 0, temporalLayer: 2 }, 2000, { ...s, wantedSpatial: 0 }), undefined);

  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
  const f = new FrameRateFirst();
  const c = consumer();
  f.watch(c, producer(), transport(900000, 350000));
  await run(t, FIRST_ROOM_FOR_MS + 1000);
  assert.equal(f.cap('c1'), 1);
  for (const spatialLayer of [0, 1]) c.emit('layerschange', { spatialLayer, temporalLayer: 2 });
  t.mock.timers.tick(2000);
  c.emit('layerschange', { spatialLayer: 0, temporalLayer: 2 }); // the link could not
  await flush();
  assert.equal(f.cap('c1'), 0);
  assert.deepEqual(c.set.at(-1), { spatialLayer: 0, temporalLayer: 2 });
  // A layer held for longer than FELL_BACK_MS and then left is the estimate moving: no cap.
  const d = consumer('c2');
  f.watch(d, producer(), transport(900000, 350000));
  await run(t, FIRST_ROOM_FOR_MS + 1000);
  d.emit('layerschange', { spatialLayer: 1, temporalLayer: 2 });
  t.mock.timers.tick(FELL_BACK_MS + 1000);
  d.emit('layerschange', { spatialLayer: 0, temporalLayer: 2 });
  await flush();
  assert.equal(f.cap('c2'), 1); // as lifted
  f.close();
});
