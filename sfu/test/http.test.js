// The SFU's HTTP side (/healthz, /metrics) on a real server, with the real
// registry and metrics and a pool without workers (no mediasoup needed).
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { httpHandler } from '../src/http.js';
import { SfuMetrics } from '../src/metrics.js';
import { Registry } from '../src/registry.js';
import { handleFrame } from '../src/rpc.js';

async function serve(config, workers) {
  const registry = new Registry();
  const pool = { workers, info: () => [] };
  const metrics = new SfuMetrics({ registry, pool, clients: () => 3 });
  const server = http.createServer(httpHandler({ config, pool, metrics, clients: () => 3 }));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  const ctx = { registry, pool, config, notify: () => {}, metrics };
  return { server, base, ctx };
}

test('healthz is 503 without a live worker and 200 with one', async () => {
  const down = await serve({}, [{ closed: true, died: false }]);
  const up = await serve({}, [{ closed: false, died: false }]);
  try {
    const r1 = await fetch(`${down.base}/healthz`);
    assert.equal(r1.status, 503);
    assert.equal((await r1.json()).workers, 0);
    const r2 = await fetch(`${up.base}/healthz`);
    assert.equal(r2.status, 200);
    assert.deepEqual(await r2.json(), { status: 'ok', workers: 1, clients: 3 });
  } finally {
    down.server.close();
    up.server.close();
  }
});

test('metrics count RPC requests by method and outcome; unknown names are one label', async () => {
  const { server, base, ctx } = await serve({}, []);
  try {
    await handleFrame(Buffer.from('{"id":1,"method":"server.stats"}'), false, ctx);
    await handleFrame(Buffer.from('{"id":2,"method":"router.close","params":{"routerId":"x"}}'), false, ctx);
    await handleFrame(Buffer.from('{"id":3,"method":"no.such.a"}'), false, ctx);
    await handleFrame(Buffer.from('{"id":4,"method":"no.such.b"}'), false, ctx);
    const r = await fetch(`${base}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/plain/);
    const text = await r.text();
    assert.match(text, /mediaplane_sfu_rpc_requests_total\{method="server.stats",outcome="ok"\} 1/);
    assert.match(text, /mediaplane_sfu_rpc_requests_total\{method="router.close",outcome="NOT_FOUND"\} 1/);
    assert.match(text, /mediaplane_sfu_rpc_requests_total\{method="<invalid>",outcome="UNKNOWN_METHOD"\} 2/);
    assert.doesNotMatch(text, /no\.such/);
    assert.match(text, /mediaplane_sfu_rpc_clients 3/);
    assert.match(text, /mediaplane_sfu_rtp_packets_total\{direction="out",kind="video"\} 0/);
  } finally {
    server.close();
  }
});

test('metrics need the bearer token when one is configured; other paths are 404/405', async () => {
  const { server, base } = await serve({ metricsToken: 'tok-123' }, []);
  try {
    assert.equal((await fetch(`${base}/metrics`)).status, 401);
    assert.equal((await fetch(`${base}/metrics`, { headers: { Authorization: 'Bearer nope' } })).status, 401);
    assert.equal((await fetch(`${base}/metrics`, { headers: { Authorization: 'Bearer tok-123' } })).status, 200);
    const missing = await fetch(`${base}/rpcx`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, 'not_found');
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
  } finally {
    server.close();
  }
});
