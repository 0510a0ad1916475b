// Prometheus metrics of the SFU (docs/operations.md has the list).
//
// RPC counters move as requests are handled. Everything else is read when
// /metrics is scraped: object counts from the registry, worker CPU from
// mediasoup's getResourceUsage(), and RTP packets/bytes/bitrate/loss from
// getStats() of every live producer and consumer. Packet and byte counters are
// kept monotonic by adding what each live object gained since the previous
// scrape; what an object did between the last scrape and its close is not
// counted (mediasoup has no stats of a closed object).
import client from 'prom-client';
import { log } from './log.js';

const RPC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const KINDS = ['audio', 'video'];

export class SfuMetrics {
  constructor({ registry, pool, clients }) {
    this.objects = registry;
    this.pool = pool;
    this.clients = clients; // () => number of RPC clients
    this.register = new client.Registry();
    const register = this.register;
    client.collectDefaultMetrics({ register, prefix: 'mediaplane_sfu_' });
    this.rpcRequests = new client.Counter({
      name: 'mediaplane_sfu_rpc_requests_total',
      help: 'RPC requests handled, by method and outcome (ok or the error code)',
      labelNames: ['method', 'outcome'],
      registers: [register],
    });
    this.rpcDuration = new client.Histogram({
      name: 'mediaplane_sfu_rpc_duration_seconds',
      help: 'Time to handle an RPC request in the SFU, by method',
      labelNames: ['method'],
      buckets: RPC_BUCKETS,
      registers: [register],
    });
    this.workerDeaths = new client.Counter({
      name: 'mediaplane_sfu_worker_deaths_total',
      help: 'mediasoup workers that died (each is replaced at once)',
      registers: [register],
    });
    this.workerCpu = new client.Counter({
      name: 'mediaplane_sfu_worker_cpu_seconds_total',
      help: 'CPU time of the mediasoup worker processes, by worker slot and mode (user, system)',
      labelNames: ['slot', 'mode'],
      registers: [register],
    });
    const gauge = (name, help, labelNames = []) => new client.Gauge({ name, help, labelNames, registers: [register] });
    this.workersAlive = gauge('mediaplane_sfu_workers', 'Live mediasoup workers');
    this.rpcClients = gauge('mediaplane_sfu_rpc_clients', 'Connected, authenticated RPC clients');
    this.objectsGauge = gauge('mediaplane_sfu_objects', 'Live mediasoup objects by type (router, transport, producer, consumer, observer)', ['type']);
    this.tracks = gauge('mediaplane_sfu_tracks', 'Live producers and consumers by kind', ['type', 'kind']);
    this.workerObjects = gauge('mediaplane_sfu_worker_objects', 'Routers, transports, producers and consumers per worker slot', ['slot', 'type']);
    this.bitrate = gauge('mediaplane_sfu_bitrate_bps', 'Current RTP bitrate summed over live producers (in) and consumers (out), by kind', ['direction', 'kind']);
    this.fractionLost = gauge('mediaplane_sfu_fraction_lost_max', 'Worst RTCP fraction lost (0..1) among live producers (in) and consumers (out)', ['direction', 'kind']);
    const counter = (name, help) => new client.Counter({ name, help, labelNames: ['direction', 'kind'], registers: [register] });
    this.packets = counter('mediaplane_sfu_rtp_packets_total', 'RTP packets received by producers (in) and sent by consumers (out)');
    this.bytes = counter('mediaplane_sfu_rtp_bytes_total', 'RTP bytes received by producers (in) and sent by consumers (out)');
    this.lost = counter('mediaplane_sfu_rtp_packets_lost_total', 'RTP packets lost: seen missing by producers (in), reported lost by receivers of consumers (out)');
    for (const direction of ['in', 'out']) {
      for (const kind of KINDS) for (const c of [this.packets, this.bytes, this.lost]) c.inc({ direction, kind }, 0);
    }
    this.scrapeSeconds = gauge('mediaplane_sfu_stats_scrape_seconds', 'Time the last scrape spent reading mediasoup stats');
    this.last = new Map(); // object id -> { packets, bytes, lost }
    this.lastCpu = new Map(); // `${slot}/${pid}/${mode}` -> seconds
    this.pending = null;
  }

  rpc(method, seconds, outcome) {
    const m = method ?? '<none>';
    this.rpcRequests.inc({ method: m, outcome });
    this.rpcDuration.observe({ method: m }, seconds);
  }

  /** The text exposition; everything read from mediasoup first (one scrape at a time). */
  async render() {
    this.pending ??= this.#refresh().finally(() => { this.pending = null; });
    const t0 = performance.now();
    await this.pending;
    this.scrapeSeconds.set((performance.now() - t0) / 1000);
    return { body: await this.register.metrics(), contentType: this.register.contentType };
  }

  async #refresh() {
    const alive = this.pool.workers.filter((w) => !w.closed && !w.died);
    this.workersAlive.set(alive.length);
    this.rpcClients.set(this.clients());
    for (const [type, n] of Object.entries(this.objects.counts())) this.objectsGauge.set({ type: type.replace(/s$/, '') }, n);
    for (const w of this.pool.info()) {
      const slot = String(this.pool.workers.find((x) => x.pid === w.pid)?.appData.slot ?? '?');
      for (const type of ['routers', 'transports', 'producers', 'consumers']) {
        this.workerObjects.set({ slot, type: type.replace(/s$/, '') }, w[type]);
      }
    }
    await Promise.all([this.#cpu(alive), this.#rtp()]);
  }

  async #cpu(workers) {
    await Promise.all(workers.map(async (w) => {
      try {
        const usage = await w.getResourceUsage();
        const slot = String(w.appData.slot);
        for (const [mode, ms] of [['user', usage.ru_utime], ['system', usage.ru_stime]]) {
          const key = `${slot}/${w.pid}/${mode}`;
          const seconds = ms / 1000;
          const delta = seconds - (this.lastCpu.get(key) ?? 0);
          if (delta > 0) this.workerCpu.inc({ slot, mode }, delta);
          this.lastCpu.set(key, seconds);
        }
      } catch (error) {
        log.debug('worker resource usage failed', { workerPid: w.pid, error: String(error?.message ?? error) });
      }
    }));
    const live = new Set(workers.map((w) => `${w.appData.slot}/${w.pid}`));
    for (const key of this.lastCpu.keys()) if (!live.has(key.split('/').slice(0, 2).join('/'))) this.lastCpu.delete(key);
  }

  async #rtp() {
    const bitrate = {};
    const worst = {};
    for (const direction of ['in', 'out']) for (const kind of KINDS) { bitrate[`${direction}/${kind}`] = 0; worst[`${direction}/${kind}`] = 0; }
    const seen = new Set();
    const read = async (obj, direction, type) => {
      let stats;
      try {
        stats = await obj.getStats();
      } catch {
        return; // closed meanwhile
      }
      const s = stats.find((x) => x.type === type);
      if (!s) return;
      const key = `${direction}/${obj.kind}`;
      bitrate[key] += s.bitrate ?? 0;
      worst[key] = Math.max(worst[key], (s.fractionLost ?? 0) / 256);
      this.#advance(obj.id, { direction, kind: obj.kind }, { packets: s.packetCount ?? 0, bytes: s.byteCount ?? 0, lost: Math.max(0, s.packetsLost ?? 0) });
      seen.add(obj.id);
    };
    await Promise.all([
      ...[...this.objects.producers.values()].filter((p) => p.type !== 'pipe').map((p) => read(p, 'in', 'inbound-rtp')),
      ...[...this.objects.consumers.values()].map((c) => read(c, 'out', 'outbound-rtp')),
    ]);
    for (const [key, value] of Object.entries(bitrate)) {
      const [direction, kind] = key.split('/');
      this.bitrate.set({ direction, kind }, value);
      this.fractionLost.set({ direction, kind }, worst[key]);
    }
    for (const id of this.last.keys()) if (!seen.has(id)) this.last.delete(id);
    for (const kind of KINDS) {
      this.tracks.set({ type: 'producer', kind }, [...this.objects.producers.values()].filter((p) => p.kind === kind).length);
      this.tracks.set({ type: 'consumer', kind }, [...this.objects.consumers.values()].filter((c) => c.kind === kind).length);
    }
  }

  #advance(id, labels, now) {
    const before = this.last.get(id) ?? { packets: 0, bytes: 0, lost: 0 };
    if (now.packets > before.packets) this.packets.inc(labels, now.packets - before.packets);
    if (now.bytes > before.bytes) this.bytes.inc(labels, now.bytes - before.bytes);
    if (now.lost > before.lost) this.lost.inc(labels, now.lost - before.lost);
    this.last.set(id, { packets: Math.max(now.packets, before.packets), bytes: Math.max(now.bytes, before.bytes), lost: Math.max(now.lost, before.lost) });
  }
}
