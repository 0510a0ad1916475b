// Every live mediasoup object by id, and which room a router serves. Entries
// leave on mediasoup's observer 'close', whatever closed them (our call, the
// router, the transport, a dead worker), so nothing can leak from here.
import { notFound } from './errors.js';

export class Registry {
  routers = new Map(); // routerId -> router
  roomRouters = new Map(); // roomId -> router
  transports = new Map();
  producers = new Map();
  consumers = new Map();
  observers = new Map();
  // workerPid -> Map(routerId -> roomId). mediasoup closes a dead worker's
  // routers before it emits 'died', so what they served is kept here until
  // the pool has reported it.
  #roomsByWorker = new Map();

  addRouter(router, roomId, workerPid) {
    router.appData.roomId = roomId;
    router.appData.workerPid = workerPid;
    this.routers.set(router.id, router);
    this.roomRouters.set(roomId, router);
    if (!this.#roomsByWorker.has(workerPid)) this.#roomsByWorker.set(workerPid, new Map());
    this.#roomsByWorker.get(workerPid).set(router.id, roomId);
    let workerClosed = false;
    router.on('workerclose', () => { workerClosed = true; });
    router.observer.once('close', () => {
      this.routers.delete(router.id);
      if (this.roomRouters.get(roomId) === router) this.roomRouters.delete(roomId);
      if (!workerClosed) this.#roomsByWorker.get(workerPid)?.delete(router.id);
    });
  }

  /** The routers a worker served, forgotten once taken (used when it died). */
  takeWorkerRooms(pid) {
    const rooms = this.#roomsByWorker.get(pid) ?? new Map();
    this.#roomsByWorker.delete(pid);
    return { routerIds: [...rooms.keys()], roomIds: [...rooms.values()] };
  }

  #track(map, obj, routerId) {
    obj.appData.routerId = routerId;
    map.set(obj.id, obj);
    obj.observer.once('close', () => map.delete(obj.id));
  }

  addTransport(t, routerId) { this.#track(this.transports, t, routerId); }
  addProducer(p, routerId) { this.#track(this.producers, p, routerId); }
  addConsumer(c, routerId) { this.#track(this.consumers, c, routerId); }
  addObserver(o, routerId) { this.#track(this.observers, o, routerId); }

  #get(map, what, id) {
    const obj = map.get(id);
    if (!obj) throw notFound(what, id);
    return obj;
  }

  router(id) { return this.#get(this.routers, 'router', id); }
  transport(id) { return this.#get(this.transports, 'transport', id); }
  producer(id) { return this.#get(this.producers, 'producer', id); }
  consumer(id) { return this.#get(this.consumers, 'consumer', id); }
  observer(id) { return this.#get(this.observers, 'observer', id); }

  routersOnWorker(pid) {
    return [...this.routers.values()].filter((r) => r.appData.workerPid === pid);
  }

  /** Objects hosted per worker pid: the load used to place new routers. */
  loadByWorker() {
    const load = new Map();
    const add = (obj) => {
      const router = this.routers.get(obj.appData.routerId) ?? obj;
      const pid = router.appData.workerPid;
      load.set(pid, (load.get(pid) ?? 0) + 1);
    };
    for (const r of this.routers.values()) add(r);
    for (const m of [this.transports, this.producers, this.consumers]) for (const o of m.values()) add(o);
    return load;
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
