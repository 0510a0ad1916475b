// Dynacast: a simulcast producer's publisher need not encode layers no consumer takes.
// After every change to a producer's consumers (created, closed, paused, resumed, new
// preferred layers) the highest spatial layer they want is recomputed; when it changes,
// `producer.wantedLayers` tells the control plane, which tells the publisher to stop
// (or start again) the encodings above it (docs/video-quality.md).

/**
 * The highest spatial layer the consumers of a producer with `layers` spatial layers
 * want: -1 when none is active (all paused or none at all). A consumer that cannot
 * say (a pipe to another router, a plain or simple consumer) wants every layer.
 * `wantedOf(consumer)`: the layer its subscriber asked for when its preferred layer
 * is lower only for its link's sake (framerate.js), else undefined.
 */
export function wantedSpatialLayer(layers, consumers, wantedOf = () => undefined) {
  let wanted = -1;
  for (const c of consumers) {
    if (c.paused) continue;
    const preferred = c.type === 'simulcast' || c.type === 'svc' ? wantedOf(c) ?? c.preferredLayers?.spatialLayer : undefined;
    wanted = Math.max(wanted, preferred ?? layers - 1);
    if (wanted >= layers - 1) return layers - 1;
  }
  return wanted;
}

/** The number of spatial layers a producer sends (1 for a single encoding). */
export function spatialLayers(producer) {
  const encodings = producer.rtpParameters?.encodings ?? [];
  if (encodings.length > 1) return encodings.length;
  const mode = /^[LS](\d+)/.exec(encodings[0]?.scalabilityMode ?? '');
  return mode ? Number(mode[1]) : 1;
}

export class Dynacast {
  #wanted = new Map(); // producerId -> last wanted spatial layer told

  constructor(registry, notify, wantedOf = () => undefined) {
    this.registry = registry;
    this.notify = notify;
    this.wantedOf = wantedOf;
  }

  /** Recompute a producer's wanted layer; tell when it changed. */
  update(producerId) {
    const producer = this.registry.producers.get(producerId);
    if (!producer || producer.kind !== 'video') return;
    const layers = spatialLayers(producer);
    if (layers < 2) return;
    const consumers = [...this.registry.consumers.values()].filter((c) => c.producerId === producerId);
    const wanted = wantedSpatialLayer(layers, consumers, this.wantedOf);
    if (this.#wanted.get(producerId) === wanted) return;
    this.#wanted.set(producerId, wanted);
    this.notify('producer.wantedLayers', { producerId, spatialLayer: wanted, spatialLayers: layers });
  }

  /** A producer closed: forget it. */
  forget(producerId) { this.#wanted.delete(producerId); }

  /** The last wanted layer told for a producer (undefined: never told). */
  wanted(producerId) { return this.#wanted.get(producerId); }
}
