// Unit tests of the RPC's dispatch and error-reply point (no worker needed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { handleFrame } from '../src/rpc.js';
import { Registry } from '../src/registry.js';

const ctx = { registry: new Registry(), pool: { info: () => [] }, config: {}, notify: () => {} };
const call = (text, binary = false) => handleFrame(Buffer.from(text), binary, ctx);

test('valid request gets ok reply with its id', async () => {
  const reply = await call('{"id": 3, "method": "server.stats"}');
  assert.deepEqual(reply, { id: 3, ok: true, data: { routers: 0, transports: 0, producers: 0, consumers: 0, observers: 0 } });
});

test('malformed frames get BAD_MESSAGE and never throw', async () => {
  for (const text of ['nope', '42', 'null', '[]', '{"method":"server.stats"}', '{"id":1.5,"method":"x"}']) {
    const reply = await call(text);
    assert.equal(reply.ok, false, text);
    assert.equal(reply.error.code, 'BAD_MESSAGE', text);
    assert.equal(reply.id, null, text);
  }
  const binary = await call('{"id":1,"method":"server.stats"}', true);
  assert.equal(binary.error.code, 'BAD_MESSAGE');
});

test('unknown and prototype method names are UNKNOWN_METHOD', async () => {
  for (const method of ['nope', 'constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    const reply = await call(JSON.stringify({ id: 9, method }));
    assert.equal(reply.error.code, 'UNKNOWN_METHOD', method);
    assert.equal(reply.id, 9);
  }
});

test('params are validated and name the field', async () => {
  const notObject = await call('{"id": 1, "method": "router.create", "params": "x"}');
  assert.equal(notObject.error.code, 'INVALID_PARAMS');
  const wrongType = await call('{"id": 2, "method": "router.create", "params": {"roomId": 7}}');
  assert.equal(wrongType.error.code, 'INVALID_PARAMS');
  assert.match(wrongType.error.message, /params\.roomId/);
  const tooLong = await call(JSON.stringify({ id: 3, method: 'router.create', params: { roomId: 'x'.repeat(500) } }));
  assert.equal(tooLong.error.code, 'INVALID_PARAMS');
});

test('unknown ids are NOT_FOUND', async () => {
  for (const [method, key] of [['router.close', 'routerId'], ['transport.close', 'transportId'], ['producer.pause', 'producerId'], ['consumer.resume', 'consumerId'], ['observer.close', 'observerId']]) {
    const reply = await call(JSON.stringify({ id: 4, method, params: { [key]: 'missing' } }));
    assert.equal(reply.error.code, 'NOT_FOUND', method);
  }
});
