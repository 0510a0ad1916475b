// The mediasoup worker pool: one worker per slot, least-loaded placement, and
// a dead worker replaced at once with its rooms reported (no silent hang).
import * as mediasoup from 'mediasoup';
import { webRtcServerListenInfos } from './config.js';
import { log } from './log.js';

export class WorkerPool {
  /** @type {import('mediasoup').types.Worker[]} */
  workers = [];

  constructor(config, registry, onWorkerDied) {
    this.config = config;
    this.registry = registry;
    this.onWorkerDied = onWorkerDied;
    this.closing = false;
  }

  async start() {
    for (let i = 0; i < this.config.numWorkers; i++) this.workers.push(await this.#spawn(i));
  }

  async #spawn(slot) {
    const worker = await mediasoup.createWorker({
      logLevel: this.config.workerLogLevel,
      appData: { slot },
    });
    worker.on('died', (error) => this.#died(worker, error));
    // Every WebRTC transport of this worker shares one UDP and one TCP port (ICE-TCP for
    // clients whose network blocks UDP), so a firewall needs only those opened.
    try {
      worker.appData.webRtcServer = await worker.createWebRtcServer({
        listenInfos: webRtcServerListenInfos(this.config, slot),
      });
    } catch (error) {
      worker.close();
      throw new Error(`worker ${slot}: WebRtcServer on ${JSON.stringify(webRtcServerListenInfos(this.config, slot))}: ${error.message}`);
    }
    const dump = await worker.appData.webRtcServer.dump();
    worker.appData.rtcPorts = { udp: dump.udpSockets.map((s) => s.port), tcp: dump.tcpServers.map((s) => s.port) };
    log.info('worker started', { workerPid: worker.pid, slot, rtcPorts: worker.appData.rtcPorts });
    return worker;
  }

  async #died(worker, error) {
    if (this.closing) return;
    const slot = worker.appData.slot;
    const { routerIds, roomIds } = this.registry.takeWorkerRooms(worker.pid);
    log.error('worker died', { workerPid: worker.pid, slot, error: String(error?.message ?? error), roomIds });
    let newPid = null;
    try {
      const replacement = await this.#spawn(slot);
      this.workers[slot] = replacement;
      newPid = replacement.pid;
    } catch (e) {
      log.error('worker replacement failed', { slot, error: String(e?.message ?? e) });
    }
    this.onWorkerDied({ pid: worker.pid, newPid, error: String(error?.message ?? error), roomIds, routerIds });
  }

  /** The WebRtcServer of the live worker `pid`. */
  webRtcServer(pid) {
    const worker = this.workers.find((w) => w.pid === pid && !w.closed && !w.died);
    return worker?.appData.webRtcServer;
  }

  // The least-loaded live worker; one not in `avoid` (pids) when there is such a worker.
  leastLoaded(avoid = []) {
    const load = this.registry.loadByWorker();
    const alive = this.workers.filter((w) => !w.closed && !w.died);
    alive.sort((a, b) => (load.get(a.pid) ?? 0) - (load.get(b.pid) ?? 0) || a.pid - b.pid);
    return alive.find((w) => !avoid.includes(w.pid)) ?? alive[0];
  }

  info() {
    const load = this.registry.loadByWorker();
    return this.workers.map((w) => {
      const routers = this.registry.routersOnWorker(w.pid);
      const ids = new Set(routers.map((r) => r.id));
      const count = (m) => [...m.values()].filter((o) => ids.has(o.appData.routerId)).length;
      return {
        pid: w.pid,
        routers: routers.length,
        transports: count(this.registry.transports),
        producers: count(this.registry.producers),
        consumers: count(this.registry.consumers),
        load: load.get(w.pid) ?? 0,
        rtcPorts: w.appData.rtcPorts,
      };
    });
  }

  close() {
    this.closing = true;
    for (const w of this.workers) w.close();
  }
}
