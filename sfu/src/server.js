// Wiring only: settings -> worker pool -> authenticated WebSocket RPC.
// stdout carries exactly one line, the ready line; logs go to stderr.
import { WebSocketServer } from 'ws';
import { bearerCheck } from './auth.js';
import { ConfigError, loadConfig } from './config.js';
import { log, setLogLevel } from './log.js';
import { Registry } from './registry.js';
import { handleFrame } from './rpc.js';
import { WorkerPool } from './workers.js';

const CLOSE_UNAUTHORIZED = 4001;
// A client that stops reading is cut off rather than buffered without bound.
const MAX_BUFFERED_BYTES = 32 * 1024 * 1024;

async function main() {
  const config = loadConfig();
  setLogLevel(config.logLevel);
  for (const warning of config.warnings) log.warn(warning);

  const registry = new Registry();
  /** @type {Set<import('ws').WebSocket>} authenticated sockets */
  const clients = new Set();
  const notify = (notification, data) => {
    const frame = JSON.stringify({ notification, data });
    for (const ws of clients) {
      if (ws.readyState !== ws.OPEN) continue;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        log.warn('rpc client too slow, closing it', { peer: ws.peer, bufferedAmount: ws.bufferedAmount });
        ws.terminate();
        continue;
      }
      ws.send(frame);
    }
  };

  const pool = new WorkerPool(config, registry, (info) => notify('worker.died', info));
  await pool.start();
  const ctx = { config, registry, pool, notify };
  const authorized = bearerCheck(config.secret);

  const wss = new WebSocketServer({
    host: config.host,
    port: config.port,
    path: '/rpc',
    maxPayload: config.maxMessageBytes,
    perMessageDeflate: false,
  });

  wss.on('connection', (ws, req) => {
    const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    ws.peer = peer;
    // Errors (e.g. 1009 for an oversize frame: ws closes the socket itself)
    // are logged; the process and the other clients go on.
    ws.on('error', (error) => log.warn('rpc socket error', { peer, code: error.code, error: error.message }));
    if (!authorized(req.headers.authorization)) {
      log.warn('rpc client refused: missing or wrong secret', { peer });
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
    ws.on('close', (code) => {
      clients.delete(ws);
      log.info('rpc client disconnected', { peer, code, clients: clients.size });
    });
  });

  wss.on('listening', () => {
    const { port } = /** @type {import('node:net').AddressInfo} */ (wss.address());
    const workers = pool.workers.map((w) => w.pid);
    process.stdout.write(`${JSON.stringify({ event: 'ready', host: config.host, port, workers })}\n`);
    log.info('sfu ready', { host: config.host, port, workers });
  });

  wss.on('error', (error) => {
    log.error('rpc server failed', { host: config.host, port: config.port, error: error.message });
    pool.close();
    process.exit(1);
  });

  let stopping = false;
  const shutdown = (signal) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    pool.close();
    for (const ws of clients) ws.close(1001, 'shutting down');
    wss.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

process.on('unhandledRejection', (reason) => {
  log.error('unhandled rejection', { error: String(reason?.stack ?? reason) });
});

main().catch((error) => {
  if (error instanceof ConfigError) {
    log.error(`sfu refused to start: ${error.message}`, { error: error.message });
    process.stderr.write(`mediaplane-sfu: ${error.message}\n`);
  } else {
    log.error('sfu failed to start', { error: String(error?.stack ?? error) });
  }
  process.exit(1);
});
