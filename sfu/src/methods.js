// One handler per RPC method of docs/sfu-rpc.md. Each validates all its params
// first, then looks ids up (NOT_FOUND), then checks state (INVALID_STATE), and
// only then calls mediasoup. Results are plain JSON-able objects.
import { version as mediasoupVersion } from 'mediasoup';
import { mediaCodecs } from './config.js';
import { invalidParams, invalidState, raisedByMediasoup } from './errors.js';
import { wireConsumer, wireObserver, wireProducer, wireRouter, wireTransport } from './events.js';
import * as v from './validate.js';

/**
 * @typedef {object} Ctx
 * @property {import('./config.js').Config} config
 * @property {import('./registry.js').Registry} registry
 * @property {import('./workers.js').WorkerPool} pool
 * @property {(name: string, data: object) => void} notify
 * @typedef {(params: Record<string, any>, ctx: Ctx) => Promise<object>} Handler
 */

const portRange = (config) => ({ min: config.rtcMinPort, max: config.rtcMaxPort });

const tupleOf = (t) => (t ? { localAddress: t.localAddress ?? t.localIp, localPort: t.localPort, protocol: t.protocol } : undefined);

/** Prefix mediasoup's own TypeErrors with the field they concern. */
async function about(field, fn) {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof TypeError && raisedByMediasoup(error)) {
      error.message = `params.${field}: ${error.message}`;
    }
    throw error;
  }
}

/** Run a transport's connect once; a second connect is INVALID_STATE, not a worker error. */
async function connectOnce(ctx, transport, connect) {
  const meta = ctx.registry.meta(transport);
  if (meta.connected) throw invalidState(`transport ${transport.id} is already connected`);
  meta.connected = true;
  try {
    await connect();
  } catch (error) {
    meta.connected = false;
    throw error;
  }
}

function sameRouter(ctx, a, b, what) {
  if (ctx.registry.meta(a).routerId !== ctx.registry.meta(b).routerId) {
    throw invalidState(`${what} is on another router`);
  }
}

/** @type {Record<string, Handler>} */
const handlers = {
  'server.info': async (_p, ctx) => ({ version: mediasoupVersion, workers: ctx.pool.info() }),

  'server.stats': async (_p, ctx) => ctx.registry.counts(),

  // -- routers ---------------------------------------------------------------

  'router.create': async (p, ctx) => {
    const roomId = v.string(p, 'roomId', { max: 128 });
    const { registry } = ctx;
    let router = registry.roomRouters.get(roomId);
    if (!router) {
      // Concurrent creates for one room share one router.
      let pending = registry.pendingRooms.get(roomId);
      if (!pending) {
        const worker = ctx.pool.leastLoaded();
        if (!worker) throw invalidState('no mediasoup worker is available');
        pending = worker.createRouter({ mediaCodecs: structuredClone(mediaCodecs), appData: { roomId } })
          .then((r) => {
            wireRouter(ctx, r, roomId, worker.pid);
            return r;
          })
          .finally(() => registry.pendingRooms.delete(roomId));
        registry.pendingRooms.set(roomId, pending);
      }
      router = await pending;
    }
    return { routerId: router.id, roomId, workerPid: registry.meta(router).workerPid, rtpCapabilities: router.rtpCapabilities };
  },

  'router.close': async (p, ctx) => {
    ctx.registry.router(v.id(p, 'routerId')).close();
    return {};
  },

  'router.getRtpCapabilities': async (p, ctx) => ({
    rtpCapabilities: ctx.registry.router(v.id(p, 'routerId')).rtpCapabilities,
  }),

  'router.canConsume': async (p, ctx) => {
    const routerId = v.id(p, 'routerId');
    const producerId = v.id(p, 'producerId');
    const rtpCapabilities = v.rtpCapabilities(p);
    const router = ctx.registry.router(routerId);
    sameRouter(ctx, ctx.registry.producer(producerId), router, `producer ${producerId}`);
    return { canConsume: router.canConsume({ producerId, rtpCapabilities }) };
  },

  // -- transports ------------------------------------------------------------

  'transport.createWebRtc': async (p, ctx) => {
    const routerId = v.id(p, 'routerId');
    const enableUdp = v.bool(p, 'enableUdp', true);
    const enableTcp = v.bool(p, 'enableTcp', true);
    const preferUdp = v.bool(p, 'preferUdp', true);
    const initialAvailableOutgoingBitrate = v.int(p, 'initialAvailableOutgoingBitrate', { optional: true, min: 10_000, max: 1_000_000_000 });
    const appData = v.appData(p);
    if (!enableUdp && !enableTcp) throw invalidParams('params.enableUdp: enableUdp and enableTcp cannot both be false');
    const router = ctx.registry.router(routerId);
    const { config } = ctx;
    const base = { ip: config.rtcListenIp, announcedAddress: config.rtcAnnouncedAddress, portRange: portRange(config) };
    const listenInfos = [];
    if (enableUdp) listenInfos.push({ ...base, protocol: 'udp' });
    if (enableTcp) listenInfos.push({ ...base, protocol: 'tcp' });
    const transport = await router.createWebRtcTransport({
      listenInfos, enableUdp, enableTcp, preferUdp, initialAvailableOutgoingBitrate, appData,
    });
    wireTransport(ctx, transport, router);
    return {
      transportId: transport.id,
      iceParameters: transport.iceParameters,
      iceCandidates: transport.iceCandidates,
      dtlsParameters: transport.dtlsParameters,
      sctpParameters: transport.sctpParameters ?? null,
    };
  },

  'transport.connect': async (p, ctx) => {
    const transportId = v.id(p, 'transportId');
    const dtlsParameters = v.dtlsParameters(p);
    const transport = ctx.registry.transport(transportId);
    if (transport.type !== 'webrtc') throw invalidState('transport.connect is for WebRTC transports; use transport.connectPlain');
    await connectOnce(ctx, transport, () => about('dtlsParameters', () => transport.connect({ dtlsParameters })));
    return {};
  },

  'transport.restartIce': async (p, ctx) => {
    const transport = ctx.registry.transport(v.id(p, 'transportId'));
    if (transport.type !== 'webrtc') throw invalidState('only WebRTC transports restart ICE');
    return { iceParameters: await transport.restartIce() };
  },

  'transport.createPlain': async (p, ctx) => {
    const routerId = v.id(p, 'routerId');
    const rtcpMux = v.bool(p, 'rtcpMux', true);
    const comedia = v.bool(p, 'comedia', false);
    const enableSrtp = v.bool(p, 'enableSrtp', false);
    const srtpCryptoSuite = v.oneOf(p, 'srtpCryptoSuite', v.SRTP_CRYPTO_SUITES, { optional: true });
    const appData = v.appData(p);
    const router = ctx.registry.router(routerId);
    const transport = await router.createPlainTransport({
      listenInfo: { protocol: 'udp', ip: ctx.config.plainListenIp, portRange: portRange(ctx.config) },
      rtcpMux, comedia, enableSrtp, srtpCryptoSuite, appData,
    });
    wireTransport(ctx, transport, router);
    return {
      transportId: transport.id,
      tuple: tupleOf(transport.tuple),
      rtcpTuple: tupleOf(transport.rtcpTuple),
      srtpParameters: transport.srtpParameters,
    };
  },

  'transport.connectPlain': async (p, ctx) => {
    const transportId = v.id(p, 'transportId');
    const ip = v.ip(p, 'ip', { optional: true });
    const port = v.int(p, 'port', { optional: true, min: 1, max: 65535 });
    const rtcpPort = v.int(p, 'rtcpPort', { optional: true, min: 1, max: 65535 });
    const srtpParameters = v.srtpParameters(p, 'srtpParameters', { optional: true });
    const transport = ctx.registry.transport(transportId);
    if (transport.type !== 'plain') throw invalidState('transport.connectPlain is for plain transports; use transport.connect');
    await connectOnce(ctx, transport, () => transport.connect({ ip, port, rtcpPort, srtpParameters }));
    return {};
  },

  'transport.produce': async (p, ctx) => {
    const transportId = v.id(p, 'transportId');
    const kind = v.oneOf(p, 'kind', ['audio', 'video']);
    const rtpParameters = v.rtpParameters(p);
    const paused = v.bool(p, 'paused', false);
    const keyFrameRequestDelay = v.int(p, 'keyFrameRequestDelay', { optional: true, max: 60_000 });
    const appData = v.appData(p);
    const transport = ctx.registry.transport(transportId);
    const producer = await about('rtpParameters', () => transport.produce({ kind, rtpParameters, paused, keyFrameRequestDelay, appData }));
    wireProducer(ctx, producer, transport);
    return { producerId: producer.id, kind: producer.kind, type: producer.type };
  },

  'transport.consume': async (p, ctx) => {
    const transportId = v.id(p, 'transportId');
    const producerId = v.id(p, 'producerId');
    const rtpCapabilities = v.rtpCapabilities(p);
    const paused = v.bool(p, 'paused', true);
    const preferredLayers = v.layers(p, 'preferredLayers', { optional: true });
    const appData = v.appData(p);
    const { registry } = ctx;
    const transport = registry.transport(transportId);
    const producer = registry.producer(producerId);
    sameRouter(ctx, producer, transport, `producer ${producerId}`);
    const router = registry.router(registry.meta(transport).routerId);
    if (!router.canConsume({ producerId, rtpCapabilities })) {
      throw invalidState(`params.rtpCapabilities cannot consume producer ${producerId}`);
    }
    const consumer = await about('rtpCapabilities', () => transport.consume({ producerId, rtpCapabilities, paused, preferredLayers, appData }));
    wireConsumer(ctx, consumer, transport);
    return {
      consumerId: consumer.id,
      producerId,
      kind: consumer.kind,
      type: consumer.type,
      rtpParameters: consumer.rtpParameters,
      producerPaused: consumer.producerPaused,
    };
  },

  'transport.close': async (p, ctx) => {
    ctx.registry.transport(v.id(p, 'transportId')).close();
    return {};
  },

  'transport.getStats': async (p, ctx) => ({ stats: await ctx.registry.transport(v.id(p, 'transportId')).getStats() }),

  // -- producers -------------------------------------------------------------

  'producer.pause': async (p, ctx) => { await ctx.registry.producer(v.id(p, 'producerId')).pause(); return {}; },
  'producer.resume': async (p, ctx) => { await ctx.registry.producer(v.id(p, 'producerId')).resume(); return {}; },
  'producer.close': async (p, ctx) => { ctx.registry.producer(v.id(p, 'producerId')).close(); return {}; },
  'producer.getStats': async (p, ctx) => ({ stats: await ctx.registry.producer(v.id(p, 'producerId')).getStats() }),

  // -- consumers -------------------------------------------------------------

  'consumer.pause': async (p, ctx) => { await ctx.registry.consumer(v.id(p, 'consumerId')).pause(); return {}; },
  'consumer.resume': async (p, ctx) => { await ctx.registry.consumer(v.id(p, 'consumerId')).resume(); return {}; },
  'consumer.close': async (p, ctx) => { ctx.registry.consumer(v.id(p, 'consumerId')).close(); return {}; },
  'consumer.requestKeyFrame': async (p, ctx) => { await ctx.registry.consumer(v.id(p, 'consumerId')).requestKeyFrame(); return {}; },

  'consumer.setPreferredLayers': async (p, ctx) => {
    const consumerId = v.id(p, 'consumerId');
    const spatialLayer = v.int(p, 'spatialLayer', { max: 15 });
    const temporalLayer = v.int(p, 'temporalLayer', { optional: true, max: 15 });
    await ctx.registry.consumer(consumerId).setPreferredLayers({ spatialLayer, temporalLayer });
    return {};
  },

  'consumer.getStats': async (p, ctx) => ({ stats: await ctx.registry.consumer(v.id(p, 'consumerId')).getStats() }),

  // -- observers -------------------------------------------------------------

  'observer.createAudioLevel': async (p, ctx) => {
    const routerId = v.id(p, 'routerId');
    const maxEntries = v.int(p, 'maxEntries', { fallback: 1, min: 1, max: 100 });
    const threshold = v.int(p, 'threshold', { fallback: -80, min: -127, max: 0 });
    const interval = v.int(p, 'interval', { fallback: 1000, min: 100, max: 60_000 });
    const appData = v.appData(p);
    const router = ctx.registry.router(routerId);
    const observer = await router.createAudioLevelObserver({ maxEntries, threshold, interval, appData });
    wireObserver(ctx, observer, router);
    return { observerId: observer.id };
  },

  'observer.createActiveSpeaker': async (p, ctx) => {
    const routerId = v.id(p, 'routerId');
    const interval = v.int(p, 'interval', { fallback: 300, min: 100, max: 60_000 });
    const appData = v.appData(p);
    const router = ctx.registry.router(routerId);
    const observer = await router.createActiveSpeakerObserver({ interval, appData });
    wireObserver(ctx, observer, router);
    return { observerId: observer.id };
  },

  'observer.addProducer': async (p, ctx) => {
    const observerId = v.id(p, 'observerId');
    const producerId = v.id(p, 'producerId');
    const observer = ctx.registry.observer(observerId);
    const producer = ctx.registry.producer(producerId);
    sameRouter(ctx, producer, observer, `producer ${producerId}`);
    if (producer.kind !== 'audio') throw invalidState(`producer ${producerId} is not audio; observers take audio producers`);
    await observer.addProducer({ producerId });
    return {};
  },

  'observer.removeProducer': async (p, ctx) => {
    const observerId = v.id(p, 'observerId');
    const producerId = v.id(p, 'producerId');
    const observer = ctx.registry.observer(observerId);
    ctx.registry.producer(producerId);
    await observer.removeProducer({ producerId });
    return {};
  },

  'observer.close': async (p, ctx) => {
    ctx.registry.observer(v.id(p, 'observerId')).close();
    return {};
  },
};

/** Method name -> handler; frozen, and looked up with Object.hasOwn only. */
export const methods = Object.freeze(handlers);
