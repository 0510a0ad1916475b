// Frame rate first (docs/video-quality.md): when a subscriber's link cannot carry the
// layer its tile wants at the full frame rate, it gets a smaller layer at the full rate,
// not a larger one at a quarter of it.
//
// mediasoup's bandwidth estimation, left alone, climbs the layers in steps (s0 t0, s0 t1,
// s0 t2, s1 t0, ...) and takes a step when it costs no more than the one it has: the
// base temporal layer of 360p costs about what full-rate 180p does, so on a short link
// it settles on 360p at a quarter of the frame rate (measured on a 600 kbit/s link: 5 of
// 20 fps), and each climb it tries and gives up costs a key frame and a burst that the
// short link drops (frames lost on every stream it carries). So here every spatial climb
// is gated: a consumer starts capped at its lowest spatial layer, and a cap is lifted
// one layer only once the transport's estimate has had room for the next layer's
// bitrate and 30 % more for a while (3 s; 5 s after a failed try), the room shared out
// among the consumers of one transport (cheapest first) so that lifts made together
// fit together. A consumer that the estimate puts on a spatial layer above 0 without its
// top temporal layer for 3 s, or that falls back within 5 s of a climb, gets its cap one
// below; it is not lifted again for a while (10 s, twice as long after each failure, up
// to 2 min). The layer the tile wants (the control plane's setPreferredLayers) is kept
// apart: the cap only lowers it, and dynacast keeps the publisher encoding what tiles want.

import { log } from './log.js';

export const RETRY_MS = 10_000; // the first try above a cap, after it is set
export const MAX_RETRY_MS = 120_000; // the longest wait between tries
export const TICK_MS = 1000;

/** Temporal layers a simulcast producer's encodings carry (L1T3 -> 3; none said: 1). */
export function temporalLayers(producer) {
  const mode = /T(\d+)/.exec(producer?.rtpParameters?.encodings?.[0]?.scalabilityMode ?? '');
  return mode ? Number(mode[1]) : 1;
}

/**
 * What to do about a consumer's new current `layers` (null: none sent), given what it
 * wants and its cap: the new cap, or undefined when nothing changes. Only a spatial
 * layer above 0 missing temporal layers (frame rate given up for size) lowers the cap.
 */
export function capAfter(layers, { wantedSpatial, cap, maxTemporal }) {
  if (!layers || maxTemporal < 1) return undefined;
  const { spatialLayer, temporalLayer } = layers;
  if (spatialLayer > 0 && temporalLayer < maxTemporal && spatialLayer <= Math.min(wantedSpatial, cap)) {
    return spatialLayer - 1;
  }
  return undefined;
}

export const FELL_BACK_MS = 5000; // a spatial layer left this soon after it was reached: a failed try
export const SETTLE_MS = 3000; // a frame rate given up this long (not a passing step or a dip) caps
export const FIRST_ROOM_FOR_MS = 3000; // the estimate must have had room this long before a climb
export const ROOM_FOR_MS = 5000; // and this long once a try has failed
export const MARGIN = 1.3; // and room for 30 % more than the next layer needs (it overshoots)

/**
 * A consumer that reached spatial layer `from.spatialLayer` at `from.at` and is now at
 * `layers`: the cap when that try failed (it fell back within FELL_BACK_MS to a layer
 * below what it wants and may have), or undefined. Each such try costs a key frame and
 * a burst the short link drops (frames lost on every stream it carries), so it is not
 * retried until the estimate has had room (the same wait as a frame-rate cap).
 */
export function capAfterFallBack(from, layers, now, { wantedSpatial, cap }) {
  if (!from || !layers || now - from.at > FELL_BACK_MS) return undefined;
  const spatial = layers.spatialLayer;
  return spatial < from.spatialLayer && spatial < Math.min(wantedSpatial, cap) ? spatial : undefined;
}

/**
 * The bitrate a producer's encoding `index` arrives at (bits/s), or its maxBitrate while
 * nothing arrives yet (a layer just started); 0 when neither is known.
 */
export function encodingBitrate(producer, stats, index) {
  const encoding = producer.rtpParameters?.encodings?.[index];
  if (!encoding) return 0;
  const { rid, ssrc } = encoding;
  const s = stats.find((x) => x.type === 'inbound-rtp' && (rid ? x.rid === rid : x.ssrc === ssrc));
  return s?.bitrate || (encoding.maxBitrate ?? 0);
}

/**
 * What climbing from encoding `index` to the next adds (bits/s): the difference of their
 * bitrates, and never less than the lower one's (a layer has four times the pixels of the
 * one below; one just started by dynacast shows a few kbit/s until it has run a while).
 */
export function climbCost(producer, stats, index) {
  const here = encodingBitrate(producer, stats, index);
  return Math.max(encodingBitrate(producer, stats, index + 1) - here, here);
}

/** What a transport may still send (bits/s, MARGIN kept), from its own estimate; 0 when unknown. */
export function room(transportStats) {
  const t = transportStats.find((x) => x.type === 'webrtc-transport') ?? transportStats[0];
  if (!t || typeof t.availableOutgoingBitrate !== 'number') return 0;
  return Math.max(0, t.availableOutgoingBitrate / MARGIN - (t.sendBitrate ?? 0));
}

/** Room on a transport for `extra` more bits/s (and MARGIN), from its own estimate. */
export function hasRoom(transportStats, extra) {
  const t = transportStats.find((x) => x.type === 'webrtc-transport') ?? transportStats[0];
  return Boolean(t) && typeof t.availableOutgoingBitrate === 'number' && room(transportStats) >= extra;
}

/** How long a consumer waits after its `failures`-th failed try (0: none failed). */
export function retryWait(failures) {
  return failures < 1 ? 0 : Math.min(RETRY_MS * 2 ** (failures - 1), MAX_RETRY_MS);
}

export class FrameRateFirst {
  #state = new Map(); // consumerId -> what watch() keeps
  #roomSince = new Map(); // transport -> since when its estimate has had room for a climb
  #timer = null;
  #ticking = false;

  constructor({ now = () => Date.now() } = {}) {
    this.now = now;
  }

  /**
   * Follow a simulcast consumer of a producer with temporal layers on a WebRTC transport
   * (others: ignored). A plain (recording, egress) or pipe consumer has no bandwidth
   * estimate: it takes the top layer, and a stream just (re)started may show its upper
   * temporal layers late, which must not cap it.
   */
  watch(consumer, producer, transport) {
    const temporal = temporalLayers(producer);
    const spatial = producer.rtpParameters?.encodings?.length ?? 1;
    if (transport?.type !== 'webrtc') return;
    if (consumer.type !== 'simulcast' || consumer.kind !== 'video' || temporal < 2 || spatial < 2) return;
    const preferred = consumer.preferredLayers ?? {};
    this.#state.set(consumer.id, {
      consumer, producer, transport,
      wantedSpatial: preferred.spatialLayer ?? spatial - 1,
      wantedTemporal: preferred.temporalLayer,
      cap: 0, // every climb waits for room (#lift)
      maxTemporal: temporal - 1,
      failures: 0, // tries that failed: each makes the next wait longer (retryWait)
      retryAt: 0,
      reached: null, // { spatialLayer, at }: the last spatial layer climbed to
      pending: null,
    });
    this.#apply(this.#state.get(consumer.id)).catch(() => {});
    consumer.on('layerschange', (layers) => this.layersChanged(consumer.id, layers));
    consumer.observer.once('close', () => {
      clearTimeout(this.#state.get(consumer.id)?.pending);
      this.#state.delete(consumer.id);
    });
    if (!this.#timer) {
      this.#timer = setInterval(() => { this.tick().catch(() => {}); }, TICK_MS);
      this.#timer.unref?.();
    }
  }

  /** The layers the subscriber's tile wants (the control plane's setPreferredLayers). */
  async setWanted(consumer, spatialLayer, temporalLayer) {
    const s = this.#state.get(consumer.id);
    if (!s) {
      await consumer.setPreferredLayers({ spatialLayer, temporalLayer });
      return;
    }
    s.wantedSpatial = spatialLayer;
    s.wantedTemporal = temporalLayer;
    await this.#apply(s);
  }

  /** The spatial layer a consumer's subscriber wants, its cap aside (undefined: not followed). */
  wanted(consumerId) { return this.#state.get(consumerId)?.wantedSpatial; }

  /** Its cap (undefined: not followed). */
  cap(consumerId) { return this.#state.get(consumerId)?.cap; }

  /** A new current layer: a frame rate given up for size still so after SETTLE_MS caps. */
  layersChanged(consumerId, layers) {
    const s = this.#state.get(consumerId);
    if (!s) return;
    const fellTo = capAfterFallBack(s.reached, layers, this.now(), s);
    // A climb is timed; a fall is not a climb (falling further is the estimate moving).
    const previous = s.reached?.spatialLayer ?? -1;
    if (layers && layers.spatialLayer !== previous) {
      const at = layers.spatialLayer > previous ? this.now() : -Infinity;
      s.reached = { spatialLayer: layers.spatialLayer, at };
    }
    if (fellTo !== undefined) {
      log.info('layer try failed', { consumerId, fellTo });
      this.lower(s, fellTo).catch(() => {});
      return;
    }
    if (s.pending || capAfter(layers, s) === undefined) return;
    s.pending = setTimeout(() => {
      s.pending = null;
      const cap = capAfter(s.consumer.currentLayers, s);
      if (cap === undefined || s.consumer.closed) return;
      this.lower(s, cap).catch(() => {});
    }, SETTLE_MS);
  }

  async lower(s, cap) {
    s.failures += 1;
    const retryMs = retryWait(s.failures); // each failure waits longer
    log.info('layer capped for frame rate', { consumerId: s.consumer.id, cap, wanted: s.wantedSpatial,
      current: s.consumer.currentLayers, retryMs });
    s.cap = cap;
    s.retryAt = this.now() + retryMs;
    await this.#apply(s);
  }

  /** Lift by one layer the caps whose wait is over, when the link's estimate has room. */
  async tick() {
    if (this.#ticking) return; // one at a time: each reads stats, then moves caps
    this.#ticking = true;
    try {
      await this.#lift();
    } finally {
      this.#ticking = false;
    }
  }

  async #lift() {
    const now = this.now();
    const waiting = new Map(); // transport -> its consumers that may climb now
    for (const s of this.#state.values()) {
      if (s.consumer.closed || s.cap >= s.wantedSpatial || now < s.retryAt) continue;
      waiting.set(s.transport, [...(waiting.get(s.transport) ?? []), s]);
    }
    for (const transport of this.#roomSince.keys()) {
      if (!waiting.has(transport)) this.#roomSince.delete(transport);
    }
    for (const [transport, list] of waiting) await this.#liftOn(transport, list, now);
  }

  /**
   * Share out the room on one transport's estimate among its consumers waiting to climb,
   * cheapest first, once it has had room for the cheapest long enough: what is lifted
   * together fits together. After a lift the next waits for room with it sent.
   */
  async #liftOn(transport, list, now) {
    for (const s of list) s.extra = climbCost(s.producer, await s.producer.getStats(), s.cap);
    list.sort((a, b) => a.extra - b.extra);
    let budget = room(await transport.getStats());
    if (!(budget >= list[0].extra)) {
      this.#roomSince.delete(transport);
      return;
    }
    const since = this.#roomSince.get(transport) ?? now;
    this.#roomSince.set(transport, since);
    let lifted = false;
    for (const s of list) {
      if (now - since < (s.failures ? ROOM_FOR_MS : FIRST_ROOM_FOR_MS) || s.extra > budget) continue;
      budget -= s.extra;
      s.cap += 1;
      s.retryAt = now + retryWait(s.failures);
      lifted = true;
      log.info('layer cap lifted', { consumerId: s.consumer.id, cap: s.cap, wanted: s.wantedSpatial,
        extra: s.extra });
      await this.#apply(s);
    }
    if (lifted) this.#roomSince.delete(transport);
  }

  async #apply(s) {
    if (s.consumer.closed) return;
    const spatialLayer = Math.min(s.wantedSpatial, s.cap);
    const temporalLayer = s.wantedTemporal;
    const now = s.consumer.preferredLayers;
    if (now?.spatialLayer === spatialLayer && now?.temporalLayer === (temporalLayer ?? now?.temporalLayer)) return;
    await s.consumer.setPreferredLayers({ spatialLayer, temporalLayer });
  }

  close() { clearInterval(this.#timer); this.#timer = null; this.#state.clear(); this.#roomSince.clear(); }
}
