import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { addSpeaker, removeSpeaker } from '../src/speakers.js';

function observer(type) {
  const calls = [];
  return { type, closed: false, observer: new EventEmitter(), calls,
    addProducer: async ({ producerId }) => { calls.push(['add', producerId]); },
    removeProducer: async ({ producerId }) => { calls.push(['remove', producerId]); } };
}
const producer = (id, paused = false) => ({ id, paused, observer: new EventEmitter() });
const flush = () => new Promise(setImmediate);

test('a paused producer leaves the active speaker observer and comes back resumed', async () => {
  const o = observer('activespeaker');
  const ann = producer('ann');
  const ben = producer('ben', true);
  await addSpeaker(o, ann);
  await addSpeaker(o, ann); // twice: followed once
  await addSpeaker(o, ben); // paused when added: not in it yet
  assert.deepEqual(o.calls, [['add', 'ann']]);
  ann.observer.emit('pause');
  ben.observer.emit('resume');
  await flush();
  assert.deepEqual(o.calls.slice(1), [['remove', 'ann'], ['add', 'ben']]);
  await removeSpeaker(o, 'ben'); // removed: its pauses no longer followed
  ben.observer.emit('resume');
  ann.observer.emit('close');
  ann.observer.emit('resume');
  await flush();
  assert.deepEqual(o.calls.slice(3), [['remove', 'ben']]);
});

test('an audio level observer is left as mediasoup has it', async () => {
  const o = observer('audiolevel');
  const ann = producer('ann');
  await addSpeaker(o, ann);
  ann.observer.emit('pause');
  await flush();
  assert.deepEqual(o.calls, [['add', 'ann']]);
  assert.equal(ann.observer.listenerCount('pause'), 0);
});
