// Shared by the integration tests: start the real SFU as a child process on a
// free port, and a small RPC client over `ws`. (No tests in here.)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'server.js');
export const WORKER_BIN = process.env.MEDIASOUP_WORKER_BIN || '/var/cache/mediaplane/worker/current/mediasoup-worker';
/** Reason to skip the integration tests, or false. */
export const NO_WORKER = existsSync(WORKER_BIN) ? false : `no mediasoup worker at ${WORKER_BIN} (set MEDIASOUP_WORKER_BIN)`;

export const SECRET = 'test-secret-0123456789';

/**
 * Start src/server.js with port 0 and wait for its ready line.
 * @param {{workers?: number, env?: Record<string, string>}} [opts]
 */
export async function startSfu({ workers = 1, env = {} } = {}) {
  const child = spawn(process.execPath, [SERVER], {
    env: {
      ...process.env,
      MEDIAPLANE_ENV: 'test',
      MEDIAPLANE_SFU_HOST: '127.0.0.1',
      MEDIAPLANE_SFU_PORT: '0',
      MEDIAPLANE_SFU_SECRET: SECRET,
      MEDIAPLANE_SFU_NUM_WORKERS: String(workers),
      MEDIAPLANE_SFU_LOG_LEVEL: 'warn',
      MEDIASOUP_WORKER_BIN: WORKER_BIN,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = [];
  readline.createInterface({ input: child.stderr }).on('line', (line) => {
    stderr.push(line);
    if (process.env.SFU_TEST_VERBOSE) process.stderr.write(`[sfu] ${line}\n`);
  });
  const lines = readline.createInterface({ input: child.stdout });
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('no ready line within 15 s')), 15_000);
    function fail(error) {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${error.message}\n${stderr.slice(-20).join('\n')}`));
    }
    lines.on('line', (line) => {
      const msg = JSON.parse(line);
      if (msg.event === 'ready') { clearTimeout(timer); resolve(msg); }
    });
    child.once('exit', (code) => fail(new Error(`the SFU exited with code ${code}`)));
  });
  return {
    ...ready,
    child,
    stderr,
    url: `ws://127.0.0.1:${ready.port}/rpc`,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const [code] = await once(child, 'exit');
      clearTimeout(timer);
      return code;
    },
  };
}

/** Open a socket; resolves once open (auth failures then show up as a close). */
export async function openSocket(url, headers = {}) {
  const ws = new WebSocket(url, { headers });
  await once(ws, 'open');
  return ws;
}

/** Resolve with {code, reason} when the socket closes (within `ms`). */
export function closed(ws, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('socket not closed in time')), ms);
    ws.once('close', (code, reason) => { clearTimeout(timer); resolve({ code, reason: reason.toString() }); });
  });
}

export class Client {
  #nextId = 1;
  #pending = new Map();
  /** Every notification received, in order. */
  notifications = [];
  #waiters = new Set();
  #raw = [];
  /** Replies nobody waited for. */
  orphans = [];

  /** @param {WebSocket} ws */
  constructor(ws) {
    this.ws = ws;
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.notification) {
        this.notifications.push(msg);
        for (const w of this.#waiters) w.check(msg);
        return;
      }
      const pending = this.#pending.get(msg.id);
      if (pending) { this.#pending.delete(msg.id); pending(msg); return; }
      const raw = this.#raw.shift();
      if (raw) raw.resolve(msg); else this.orphans.push(msg);
    });
  }

  static async connect(url, secret = SECRET) {
    return new Client(await openSocket(url, { Authorization: `Bearer ${secret}` }));
  }

  /** Send a raw frame; resolve with the next reply not matched to a pending request. */
  raw(frame, ms = 5000) {
    return new Promise((resolve, reject) => {
      const entry = { resolve: (msg) => { clearTimeout(timer); resolve(msg); } };
      const timer = setTimeout(() => {
        this.#raw.splice(this.#raw.indexOf(entry), 1);
        reject(new Error(`no reply to ${String(frame).slice(0, 80)}`));
      }, ms);
      this.#raw.push(entry);
      this.ws.send(frame, { binary: Buffer.isBuffer(frame) });
    });
  }

  /** The full reply {id, ok, data|error}. */
  call(method, params, ms = 5000) {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.#pending.delete(id); reject(new Error(`${method}: no reply in ${ms} ms`)); }, ms);
      this.#pending.set(id, (msg) => { clearTimeout(timer); resolve(msg); });
      this.ws.send(JSON.stringify(params === undefined ? { id, method } : { id, method, params }));
    });
  }

  /** The result's data, or throw an Error carrying the reply's error code. */
  async request(method, params) {
    const reply = await this.call(method, params);
    if (!reply.ok) throw Object.assign(new Error(`${method}: ${reply.error.code}: ${reply.error.message}`), reply.error);
    return reply.data;
  }

  /** The first notification (already received or to come) matching name and pred. */
  waitFor(name, pred = () => true, ms = 3000) {
    const match = (msg) => msg.notification === name && pred(msg.data);
    const seen = this.notifications.find(match);
    if (seen) return Promise.resolve(seen.data);
    return new Promise((resolve, reject) => {
      const waiter = {
        check: (msg) => {
          if (!match(msg)) return;
          this.#waiters.delete(waiter);
          clearTimeout(timer);
          resolve(msg.data);
        },
      };
      const timer = setTimeout(() => { this.#waiters.delete(waiter); reject(new Error(`no ${name} notification in ${ms} ms`)); }, ms);
      this.#waiters.add(waiter);
    });
  }

  async close() {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const done = once(this.ws, 'close');
    this.ws.close();
    await done;
  }
}

/** A static Opus producer's rtpParameters (no signalling needed for plain RTP). */
export const opusRtpParameters = (ssrc) => ({
  codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1 } }],
  encodings: [{ ssrc }],
});

/** One RTP packet: 12-byte header + an Opus-looking payload. */
export function rtpPacket({ payloadType = 100, seq, timestamp, ssrc, payload = Buffer.from([0xfc, 0xff, 0xfe]) }) {
  const header = Buffer.alloc(12);
  header[0] = 0x80;
  header[1] = payloadType & 0x7f;
  header.writeUInt16BE(seq & 0xffff, 2);
  header.writeUInt32BE(timestamp >>> 0, 4);
  header.writeUInt32BE(ssrc >>> 0, 8);
  return Buffer.concat([header, payload]);
}
