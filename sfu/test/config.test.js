import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isLoopback, loadConfig, webRtcServerListenInfos } from '../src/config.js';

function withEnv(vars, fn) {
  const saved = { ...process.env };
  for (const key of Object.keys(process.env)) if (key.startsWith('MEDIAPLANE_')) delete process.env[key];
  Object.assign(process.env, vars);
  try { return fn(); } finally { process.env = saved; }
}

test('the development secret is refused on a non-loopback address', () => {
  for (const where of [{ MEDIAPLANE_SFU_HOST: '0.0.0.0' }, { MEDIAPLANE_RTC_LISTEN_IP: '192.0.2.1' },
    { MEDIAPLANE_RTC_ANNOUNCED_ADDRESS: '198.51.100.7' }]) {
    assert.throws(() => withEnv({ MEDIAPLANE_ENV: 'dev', ...where }, loadConfig), /non-loopback/);
    const own = withEnv({ MEDIAPLANE_ENV: 'dev', MEDIAPLANE_SFU_SECRET: 'x'.repeat(40), ...where }, loadConfig);
    assert.equal(own.secret, 'x'.repeat(40));
  }
  assert.equal(withEnv({ MEDIAPLANE_ENV: 'dev' }, loadConfig).host, '127.0.0.1');
});

test('loopback means 127/8, ::1 and localhost only', () => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.ok(isLoopback(a), a);
  for (const a of ['0.0.0.0', '10.0.0.1', '::', '128.0.0.1', 'example.org']) assert.ok(!isLoopback(a), a);
});

test('a WebRtcServer per worker: UDP and TCP on the fixed port + slot, or from the range', () => {
  const fixed = withEnv({ MEDIAPLANE_ENV: 'test', MEDIAPLANE_RTC_SERVER_PORT: '40100',
    MEDIAPLANE_RTC_ANNOUNCED_ADDRESS: '127.0.0.2' }, loadConfig);
  assert.deepEqual(webRtcServerListenInfos(fixed, 2).map((i) => [i.protocol, i.port, i.announcedAddress]),
    [['udp', 40102, '127.0.0.2'], ['tcp', 40102, '127.0.0.2']]);
  const ranged = withEnv({ MEDIAPLANE_ENV: 'test' }, loadConfig);
  assert.deepEqual(webRtcServerListenInfos(ranged, 0).map((i) => [i.protocol, i.portRange]),
    [['udp', { min: 40000, max: 49999 }], ['tcp', { min: 40000, max: 49999 }]]);
  assert.throws(() => withEnv({ MEDIAPLANE_ENV: 'test', MEDIAPLANE_RTC_SERVER_PORT: '65535',
    MEDIAPLANE_SFU_NUM_WORKERS: '2' }, loadConfig), /must not exceed 65535/);
});
