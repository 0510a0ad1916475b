import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as v from '../src/validate.js';

const throwsCode = (fn, pattern) => assert.throws(fn, (e) => e.code === 'INVALID_PARAMS' && pattern.test(e.message));

test('int checks range and type', () => {
  assert.equal(v.int({ a: 5 }, 'a', { min: 1, max: 9 }), 5);
  assert.equal(v.int({}, 'a', { fallback: 3 }), 3);
  throwsCode(() => v.int({ a: 10 }, 'a', { max: 9 }), /params\.a/);
  throwsCode(() => v.int({ a: '5' }, 'a'), /integer/);
});

test('intList checks type, range and length', () => {
  assert.deepEqual(v.intList({}, 'l'), []);
  assert.deepEqual(v.intList({ l: [3, 4] }, 'l'), [3, 4]);
  throwsCode(() => v.intList({ l: 3 }, 'l'), /params\.l/);
  throwsCode(() => v.intList({ l: [1.5] }, 'l'), /integers/);
  throwsCode(() => v.intList({ l: [-1] }, 'l'), /integers/);
  throwsCode(() => v.intList({ l: Array(65).fill(1) }, 'l'), /at most 64/);
});

test('oneOf, bool, ip', () => {
  assert.equal(v.oneOf({ k: 'audio' }, 'k', ['audio', 'video']), 'audio');
  throwsCode(() => v.oneOf({ k: 'data' }, 'k', ['audio', 'video']), /params\.k/);
  assert.equal(v.bool({}, 'b', true), true);
  throwsCode(() => v.bool({ b: 'true' }, 'b', false), /boolean/);
  assert.equal(v.ip({ ip: '127.0.0.1' }, 'ip'), '127.0.0.1');
  throwsCode(() => v.ip({ ip: 'evil.example; rm' }, 'ip'), /IP address/);
});
