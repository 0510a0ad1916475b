// Reference for benchmarks/sfu_rpc_roundtrip.py: the same cheap calls made
// in-process in Node (mediasoup's own channel to the worker, no WebSocket, no
// Python). Prints one JSON object on stdout.
// Usage: node rpc_inprocess.mjs <iterations>
import * as mediasoup from 'mediasoup';

const iterations = Number(process.argv[2] ?? 2000);

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function measure(fn) {
  for (let i = 0; i < 100; i++) await fn(); // warm-up
  const samples = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  samples.sort((a, b) => a - b);
  return { p50_us: percentile(samples, 50), p99_us: percentile(samples, 99), n: samples.length };
}

const worker = await mediasoup.createWorker({ logLevel: 'error' });
const router = await worker.createRouter({
  mediaCodecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 }],
});
const transport = await router.createPlainTransport({
  listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
});

const result = {
  'transport.getStats': await measure(() => transport.getStats()),
};
worker.close();
console.log(JSON.stringify(result));
