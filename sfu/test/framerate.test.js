import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { capAfter, capAfterFallBack, encodingBitrate, FELL_BACK_MS, FrameRateFirst, hasRoom, RETRY_MS, temporalLayers } from '../src/framerate.js';

const producer = (bitrates = [100000, 300000, 900000]) => ({
  rtpParameters: { encodings: bitrates.map((_, i) => ({ rid: `r${i}`, scalabilityMode: 'L1T3' })) },
  getStats: async () => bitrates.map((bitrate, i) => ({ type: 'inbound-rtp', rid: `r${i}`, bitrate })),
});

function consumer() {
  const c = new EventEmitter();
  Object.assign(c, { id: 'c1', type: 'simulcast', kind: 'video', closed: false, observer: new EventEmitter(),
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
});

test('frame rate given up is capped after it settles, lifted when the link has room', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
  let link = transport(400000, 350000);
  const f = new FrameRateFirst();
  const c = consumer();
  f.watch(c, producer(), { type: 'webrtc', getStats: async () => (await link.getStats()) });
  await f.setWanted(c, 1);
  assert.deepEqual(c.set.at(-1), { spatialLayer: 1, temporalLayer: undefined });
  assert.equal(f.wanted('c1'), 1);
  // A passing step is not a cap: back to full rate before it settles.
  c.currentLayers = { spatialLayer: 1, temporalLayer: 0 };
  c.emit('layerschange', c.currentLayers);
  c.currentLayers = { spatialLayer: 1, temporalLayer: 2 };
  t.mock.timers.tick(3500);
  await flush();
  assert.equal(f.cap('c1'), 2);
  // Still a quarter of the rate after 3 s: capped to layer 0.
  c.currentLayers = { spatialLayer: 1, temporalLayer: 0 };
  c.emit('layerschange', c.currentLayers);
  t.mock.timers.tick(3500);
  await flush();
  assert.equal(f.cap('c1'), 0);
  assert.deepEqual(c.set.at(-1), { spatialLayer: 0, temporalLayer: undefined });
  assert.equal(f.wanted('c1'), 1); // dynacast keeps the publisher's layer 1 on
  // The wait is over but the link has no room for layer 1's 200 kbit/s more: stays.
  t.mock.timers.tick(RETRY_MS + 1000);
  await flush();
  assert.equal(f.cap('c1'), 0);
  link = transport(900000, 350000);
  t.mock.timers.tick(1000);
  await flush();
  assert.equal(f.cap('c1'), 0); // room for a moment only
  t.mock.timers.tick(6000);
  await flush();
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
  f.watch(c, producer(), transport(400000, 350000));
  for (const spatialLayer of [0, 1]) c.emit('layerschange', { spatialLayer, temporalLayer: 2 });
  t.mock.timers.tick(2000);
  c.emit('layerschange', { spatialLayer: 0, temporalLayer: 2 }); // the link could not
  await flush();
  assert.equal(f.cap('c1'), 0);
  assert.deepEqual(c.set.at(-1), { spatialLayer: 0, temporalLayer: 2 });
  // A layer held for longer than FELL_BACK_MS and then left is the estimate moving: no cap.
  const d = consumer();
  d.id = 'c2';
  f.watch(d, producer(), transport(400000, 350000));
  d.emit('layerschange', { spatialLayer: 1, temporalLayer: 2 });
  t.mock.timers.tick(FELL_BACK_MS + 1000);
  d.emit('layerschange', { spatialLayer: 0, temporalLayer: 2 });
  await flush();
  assert.equal(f.cap('c2'), 2);
  f.close();
});
