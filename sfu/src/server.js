// Wiring only: settings -> worker pool -> authenticated WebSocket RPC.
import crypto from 'node:crypto';
import { WebSocketServer } from 'ws';
import { loadConfig } from './config.js';
import { log, setLogLevel } from './log.js';
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
  const pool = new WorkerPool(config, registry, (info) => notify('worker.died', info));
  await pool.start();
  const ctx = { config, registry, pool, notify };

  const wss = new WebSocketServer({ host: config.host, port: config.port, path: '/rpc', maxPayload: config.maxMessageBytes });
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

  wss.on('listening', () => {
    const { port } = wss.address();
    process.stdout.write(`${JSON.stringify({ event: 'ready', host: config.host, port, workers: pool.workers.map((w) => w.pid) })}\n`);
    log.info('sfu ready', { host: config.host, port, workers: pool.workers.length });
  });

  const shutdown = (signal) => {
    log.info('shutting down', { signal });
    pool.close();
    wss.close();
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
