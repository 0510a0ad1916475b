import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Dynacast, spatialLayers, wantedSpatialLayer } from '../src/dynacast.js';

const sim = (spatialLayer, paused = false) => ({ type: 'simulcast', paused, preferredLayers: { spatialLayer } });

test('the wanted layer is the highest preferred layer of the active consumers', () => {
  assert.equal(wantedSpatialLayer(3, []), -1);
  assert.equal(wantedSpatialLayer(3, [sim(0), sim(1)]), 1);
  assert.equal(wantedSpatialLayer(3, [sim(2, true), sim(0)]), 0);
  assert.equal(wantedSpatialLayer(3, [sim(2, true)]), -1);
  // A consumer that cannot say (a pipe, a plain recording) takes every layer.
  assert.equal(wantedSpatialLayer(3, [sim(0), { type: 'pipe', paused: false }]), 2);
  assert.equal(wantedSpatialLayer(3, [{ type: 'simulcast', paused: false }]), 2);
});

test('spatial layers come from the encodings or an SVC scalability mode', () => {
  assert.equal(spatialLayers({ rtpParameters: { encodings: [{}, {}, {}] } }), 3);
  assert.equal(spatialLayers({ rtpParameters: { encodings: [{ scalabilityMode: 'L3T3_KEY' }] } }), 3);
  assert.equal(spatialLayers({ rtpParameters: { encodings: [{ scalabilityMode: 'L1T3' }] } }), 1);
  assert.equal(spatialLayers({ rtpParameters: { encodings: [{}] } }), 1);
});

test('a change is told once; single-encoding and audio producers are never told', () => {
  const producers = new Map([
    ['v', { kind: 'video', rtpParameters: { encodings: [{}, {}, {}] } }],
    ['one', { kind: 'video', rtpParameters: { encodings: [{}] } }],
    ['a', { kind: 'audio', rtpParameters: { encodings: [{}] } }],
  ]);
  const consumers = new Map();
  const told = [];
  const d = new Dynacast({ producers, consumers }, (name, data) => told.push([name, data]));
  consumers.set('c1', { producerId: 'v', ...sim(0) });
  d.update('v');
  d.update('v');
  consumers.set('c2', { producerId: 'one', ...sim(0) });
  d.update('one');
  d.update('a');
  consumers.get('c1').preferredLayers = { spatialLayer: 2 };
  d.update('v');
  consumers.delete('c1');
  d.update('v');
  assert.deepEqual(told.map(([, x]) => x.spatialLayer), [0, 2, -1]);
  assert.deepEqual(told[0], ['producer.wantedLayers', { producerId: 'v', spatialLayer: 0, spatialLayers: 3 }]);
  assert.equal(d.wanted('v'), -1);
  d.forget('v');
  assert.equal(d.wanted('v'), undefined);
});

test("a consumer capped for its link's sake still wants the layer its tile asked for", () => {
  const capped = { id: 'c', type: 'simulcast', paused: false, preferredLayers: { spatialLayer: 0 } };
  assert.equal(wantedSpatialLayer(3, [capped]), 0);
  assert.equal(wantedSpatialLayer(3, [capped], (c) => (c.id === 'c' ? 1 : undefined)), 1);
});
