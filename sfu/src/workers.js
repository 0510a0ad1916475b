// The mediasoup worker pool: one worker per slot, least-loaded placement of
// new routers, and a dead worker replaced at once with its rooms reported.
// mediasoup finds the binary through MEDIASOUP_WORKER_BIN.
import * as mediasoup from 'mediasoup';
import { log } from './log.js';

const RESPAWN_RETRY_MS = [100, 500, 1000, 2000, 5000];

/**
 * @typedef {import('mediasoup').types.Worker} Worker
 * @typedef {{pid: number, newPid: number | null, error: string, roomIds: string[], routerIds: string[]}} WorkerDied
 */

export class WorkerPool {
  /** Live workers, indexed by slot; a dead one stays until it is replaced. @type {Worker[]} */
  workers = [];
  #closing = false;

  /**
   * @param {import('./config.js').Config} config
   * @param {import('./registry.js').Registry} registry
   * @param {(info: WorkerDied) => void} onWorkerDied
   * @param {typeof mediasoup.createWorker} [createWorker]
   */
  constructor(config, registry, onWorkerDied, createWorker = mediasoup.createWorker) {
    this.config = config;
    this.registry = registry;
    this.onWorkerDied = onWorkerDied;
    this.createWorker = createWorker;
  }

  async start() {
    for (let slot = 0; slot < this.config.numWorkers; slot++) this.workers[slot] = await this.#spawn(slot);
  }

  /** @returns {Promise<Worker>} */
  async #spawn(slot) {
    const worker = await this.createWorker({ logLevel: this.config.workerLogLevel, appData: { slot } });
    worker.on('died', (error) => this.#died(slot, worker, error));
    log.info('worker started', { workerPid: worker.pid, slot });
    return worker;
  }

  #died(slot, worker, error) {
    if (this.#closing) return;
    const { routerIds, roomIds } = this.registry.takeWorkerRooms(worker.pid);
    const reason = String(error?.message ?? error);
    log.error('worker died', { workerPid: worker.pid, slot, error: reason, roomIds, routerIds });
    let reported = false;
    const report = (newPid) => {
      if (reported) return;
      reported = true;
      this.onWorkerDied({ pid: worker.pid, newPid, error: reason, roomIds, routerIds });
    };
    const attempt = async (n) => {
      if (this.#closing) return;
      try {
        const replacement = await this.#spawn(slot);
        if (this.#closing) { replacement.close(); return; }
        this.workers[slot] = replacement;
        log.info('worker replaced', { slot, workerPid: replacement.pid, deadPid: worker.pid });
        report(replacement.pid);
      } catch (e) {
        const delay = RESPAWN_RETRY_MS[Math.min(n, RESPAWN_RETRY_MS.length - 1)];
        log.error('worker replacement failed, retrying', { slot, deadPid: worker.pid, attempt: n + 1, retryMs: delay, error: String(e?.message ?? e) });
        report(null); // the rooms are gone whether or not the slot comes back
        setTimeout(() => attempt(n + 1), delay).unref();
      }
    };
    attempt(0);
  }

  /** The live worker with the least load (ties: lowest pid), or undefined. */
  leastLoaded() {
    const perWorker = this.registry.perWorker();
    const load = (w) => perWorker.get(w.pid)?.load ?? 0;
    return this.workers
      .filter((w) => w && !w.closed && !w.died)
      .sort((a, b) => load(a) - load(b) || a.pid - b.pid)[0];
  }

  /** server.info's worker list. */
  info() {
    const perWorker = this.registry.perWorker();
    return this.workers.filter((w) => w && !w.died && !w.closed).map((w) => ({
      pid: w.pid,
      ...(perWorker.get(w.pid) ?? { routers: 0, transports: 0, producers: 0, consumers: 0, load: 0 }),
    }));
  }

  close() {
    this.#closing = true;
    for (const w of this.workers) if (w && !w.closed) w.close();
  }
}
