// Wiring only: settings -> worker pool -> authenticated WebSocket RPC, plus /healthz and /metrics.
import crypto from 'node:crypto';
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { loadConfig } from './config.js';
import { Dynacast } from './dynacast.js';
import { FrameRateFirst } from './framerate.js';
import { httpHandler } from './http.js';
import { log, setLogLevel } from './log.js';
import { SfuMetrics } from './metrics.js';
import { Registry } from './registry.js';
import { handleFrame } from './rpc.js';
import { WorkerPool } from './workers.js';

const CLOSE_UNAUTHORIZED = 4001;

function authorized(req, secret) {
  const header = req.headers.authorization ?? '';
  const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
  const expected = Buffer.from(secret);
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

async function main() {
  const config = loadConfig();
  setLogLevel(config.logLevel);
  const registry = new Registry();
  const clients = new Set();
  const notify = (notification, data) => {
    const frame = JSON.stringify({ notification, data });
    for (const ws of clients) if (ws.readyState === ws.OPEN) ws.send(frame);
  };
  let metrics = null;
  const pool = new WorkerPool(config, registry, (info) => {
    metrics?.workerDeaths.inc();
    notify('worker.died', info);
  });
  await pool.start();
  metrics = new SfuMetrics({ registry, pool, clients: () => clients.size });
  const framerate = new FrameRateFirst();
  // Publishers encode what tiles want; a link's cap on one subscriber does not stop a layer.
  const dynacast = new Dynacast(registry, notify, (consumer) => framerate.wanted(consumer.id));
  const ctx = { config, registry, pool, notify, metrics, dynacast, framerate };

  // One port: HTTP (/healthz, /metrics) and the WebSocket RPC upgrade on /rpc.
  const server = http.createServer(httpHandler({ config, pool, metrics, clients: () => clients.size }));
  const wss = new WebSocketServer({ server, path: '/rpc', maxPayload: config.maxMessageBytes });
  wss.on('connection', (ws, req) => {
    const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    if (!authorized(req, config.secret)) {
      log.warn('rpc client refused: bad or missing secret', { peer });
      ws.close(CLOSE_UNAUTHORIZED, 'unauthorized');
      return;
    }
    clients.add(ws);
    log.info('rpc client connected', { peer, clients: clients.size });
    ws.on('message', (data, isBinary) => {
      handleFrame(data, isBinary, ctx)
        .then((reply) => { if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(reply)); })
        .catch((error) => log.error('rpc reply failed', { peer, error: String(error?.stack ?? error) }));
    });
    // ws closes with 1009 on an oversize frame and emits 'error' first; the
    // process and the other clients go on.
    ws.on('error', (error) => log.warn('rpc socket error', { peer, error: error.message }));
    ws.on('close', (code) => {
      clients.delete(ws);
      log.info('rpc client disconnected', { peer, code, clients: clients.size });
    });
  });

  server.on('error', (error) => {
    log.error('sfu failed to listen', { host: config.host, port: config.port, error: error.message });
    process.exit(1);
  });
  server.listen(config.port, config.host);
  server.on('listening', () => {
    const { port } = server.address();
    process.stdout.write(`${JSON.stringify({ event: 'ready', host: config.host, port, workers: pool.workers.map((w) => w.pid) })}\n`);
    log.info('sfu ready', { host: config.host, port, workers: pool.workers.length });
  });

  const shutdown = (signal) => {
    log.info('shutting down', { signal });
    pool.close();
    wss.close();
    server.close();
    for (const ws of clients) ws.terminate();
    process.exit(0);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((error) => {
  log.error('sfu failed to start', { error: String(error?.message ?? error) });
  process.exit(1);
});
