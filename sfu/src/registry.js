// Every live mediasoup object by id, and which room a router serves. Entries
// leave on mediasoup's observer 'close', whatever closed them (an RPC call, the
// router or transport closing, a dead worker), so nothing can leak from here.
import { notFound } from './errors.js';

/**
 * @typedef {import('mediasoup').types.Router} Router
 * @typedef {import('mediasoup').types.Transport} Transport
 * @typedef {import('mediasoup').types.Producer} Producer
 * @typedef {import('mediasoup').types.Consumer} Consumer
 * @typedef {import('mediasoup').types.RtpObserver} RtpObserver
 * @typedef {{routerId: string, roomId: string, workerPid: number, transportId?: string, connected?: boolean}} Meta
 */

export class Registry {
  /** @type {Map<string, Router>} */ routers = new Map();
  /** @type {Map<string, Router>} roomId -> router */ roomRouters = new Map();
  /** @type {Map<string, Promise<Router>>} roomId -> router being created */ pendingRooms = new Map();
  /** @type {Map<string, Transport>} */ transports = new Map();
  /** @type {Map<string, Producer>} */ producers = new Map();
  /** @type {Map<string, Consumer>} */ consumers = new Map();
  /** @type {Map<string, RtpObserver>} */ observers = new Map();

  /** Our bookkeeping per object, kept off the user's appData. @type {WeakMap<object, Meta>} */
  #meta = new WeakMap();
  // workerPid -> Map(routerId -> roomId). mediasoup closes a dead worker's
  // routers before it emits 'died', so what they served is kept here until
  // the pool has reported it.
  #roomsByWorker = new Map();

  /** @param {Router} router */
  addRouter(router, roomId, workerPid) {
    this.#meta.set(router, { routerId: router.id, roomId, workerPid });
    this.routers.set(router.id, router);
    this.roomRouters.set(roomId, router);
    if (!this.#roomsByWorker.has(workerPid)) this.#roomsByWorker.set(workerPid, new Map());
    this.#roomsByWorker.get(workerPid).set(router.id, roomId);
    let workerClosed = false;
    router.once('workerclose', () => { workerClosed = true; });
    router.observer.once('close', () => {
      this.routers.delete(router.id);
      if (this.roomRouters.get(roomId) === router) this.roomRouters.delete(roomId);
      if (!workerClosed) this.#roomsByWorker.get(workerPid)?.delete(router.id);
    });
  }

  /** The routers a dead worker served, forgotten once taken. */
  takeWorkerRooms(pid) {
    const rooms = this.#roomsByWorker.get(pid) ?? new Map();
    this.#roomsByWorker.delete(pid);
    return { routerIds: [...rooms.keys()], roomIds: [...rooms.values()] };
  }

  #track(map, obj, meta) {
    this.#meta.set(obj, meta);
    map.set(obj.id, obj);
    obj.observer.once('close', () => map.delete(obj.id));
  }

  /** @param {Transport} transport @param {Router} router */
  addTransport(transport, router) { this.#track(this.transports, transport, { ...this.meta(router) }); }
  /** @param {Producer} producer @param {Transport} transport */
  addProducer(producer, transport) { this.#track(this.producers, producer, { ...this.meta(transport), transportId: transport.id }); }
  /** @param {Consumer} consumer @param {Transport} transport */
  addConsumer(consumer, transport) { this.#track(this.consumers, consumer, { ...this.meta(transport), transportId: transport.id }); }
  /** @param {RtpObserver} observer @param {Router} router */
  addObserver(observer, router) { this.#track(this.observers, observer, { ...this.meta(router) }); }

  /** @returns {Meta} */
  meta(obj) { return this.#meta.get(obj); }

  #get(map, what, id) {
    const obj = map.get(id);
    if (!obj || obj.closed) throw notFound(what, id);
    return obj;
  }

  /** @returns {Router} */ router(id) { return this.#get(this.routers, 'router', id); }
  /** @returns {Transport} */ transport(id) { return this.#get(this.transports, 'transport', id); }
  /** @returns {Producer} */ producer(id) { return this.#get(this.producers, 'producer', id); }
  /** @returns {Consumer} */ consumer(id) { return this.#get(this.consumers, 'consumer', id); }
  /** @returns {RtpObserver} */ observer(id) { return this.#get(this.observers, 'observer', id); }

  /**
   * Live objects per worker pid; `load` (routers + transports + producers +
   * consumers) places new routers.
   * @returns {Map<number, {routers: number, transports: number, producers: number, consumers: number, load: number}>}
   */
  perWorker() {
    const out = new Map();
    const count = (map, key) => {
      for (const obj of map.values()) {
        const pid = this.#meta.get(obj)?.workerPid;
        if (!out.has(pid)) out.set(pid, { routers: 0, transports: 0, producers: 0, consumers: 0, load: 0 });
        const entry = out.get(pid);
        entry[key] += 1;
        entry.load += 1;
      }
    };
    count(this.routers, 'routers');
    count(this.transports, 'transports');
    count(this.producers, 'producers');
    count(this.consumers, 'consumers');
    return out;
  }

  counts() {
    return {
      routers: this.routers.size,
      transports: this.transports.size,
      producers: this.producers.size,
      consumers: this.consumers.size,
      observers: this.observers.size,
    };
  }
}
