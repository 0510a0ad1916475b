// One handler per RPC method (docs/sfu-rpc.md). Each validates its params
// before touching mediasoup and returns a plain JSON-able result.
import { version as mediasoupVersion } from 'mediasoup';
import { mediaCodecs } from './config.js';
import { invalidParams, invalidState } from './errors.js';
import { log } from './log.js';
import { addSpeaker, removeSpeaker } from './speakers.js';
import * as v from './validate.js';

const pendingRouters = new Map(); // roomId -> Promise<router>, so concurrent creates share one

function tupleOf(t) {
  return t ? { localAddress: t.localAddress ?? t.localIp, localPort: t.localPort, protocol: t.protocol } : undefined;
}

function wireTransport(ctx, transport, routerId) {
  ctx.registry.addTransport(transport, routerId);
  let reason = 'close';
  transport.on('routerclose', () => { reason = 'routerclose'; });
  transport.observer.once('close', () => {
    ctx.notify('transport.closed', { transportId: transport.id, routerId, reason });
  });
  if (transport.type === 'webrtc') {
    transport.on('dtlsstatechange', (dtlsState) => ctx.notify('transport.dtlsStateChange', { transportId: transport.id, dtlsState }));
    transport.on('icestatechange', (iceState) => ctx.notify('transport.iceStateChange', { transportId: transport.id, iceState }));
  }
}

const handlers = {
  'server.info': async (_p, ctx) => ({ version: mediasoupVersion, workers: ctx.pool.info() }),

  'server.stats': async (_p, ctx) => ctx.registry.counts(),

  'router.create': async (p, ctx) => {
    const roomId = v.string(p, 'roomId', { max: 128 });
    const avoid = v.intList(p, 'avoidWorkerPids');
    let router = ctx.registry.roomRouters.get(roomId);
    if (!router) {
      let pending = pendingRouters.get(roomId);
      if (!pending) {
        const worker = ctx.pool.leastLoaded(avoid);
        if (!worker) throw invalidState('no mediasoup worker is available');
        pending = worker.createRouter({ mediaCodecs, appData: {} }).then((r) => {
          ctx.registry.addRouter(r, roomId, worker.pid);
          let reason = 'close';
          r.on('workerclose', () => { reason = 'workerclose'; });
          r.observer.once('close', () => ctx.notify('router.closed', { routerId: r.id, roomId, reason }));
          log.info('router created', { roomId, routerId: r.id, workerPid: worker.pid });
          return r;
        }).finally(() => pendingRouters.delete(roomId));
        pendingRouters.set(roomId, pending);
      }
      router = await pending;
    }
    return { routerId: router.id, roomId, workerPid: router.appData.workerPid, rtpCapabilities: router.rtpCapabilities };
  },

  'router.close': async (p, ctx) => {
    ctx.registry.router(v.string(p, 'routerId')).close();
    return {};
  },

  'router.getRtpCapabilities': async (p, ctx) => ({
    rtpCapabilities: ctx.registry.router(v.string(p, 'routerId')).rtpCapabilities,
  }),

  'router.canConsume': async (p, ctx) => {
    const router = ctx.registry.router(v.string(p, 'routerId'));
    const producerId = v.string(p, 'producerId');
    const rtpCapabilities = v.obj(p, 'rtpCapabilities');
    return { canConsume: router.canConsume({ producerId, rtpCapabilities }) };
  },

  // A router of its own with the caller's payload types, on the worker of `nearRouterId`:
  // a WHEP client receives only on the payload types of its offer, and a consumer sends
  // on its router's, so the control plane pipes producers into a router that uses them.
  'router.createWithCodecs': async (p, ctx) => {
    const near = ctx.registry.router(v.string(p, 'nearRouterId'));
    const key = v.string(p, 'key', { max: 128 });
    const codecs = p.mediaCodecs;
    if (!Array.isArray(codecs) || codecs.length === 0 || codecs.length > 16) {
      throw invalidParams('mediaCodecs: expected a list of 1..16 codecs');
    }
    codecs.forEach((c, i) => v.object(c, `mediaCodecs[${i}]`));
    if (ctx.registry.roomRouters.has(key)) throw invalidState(`key ${key} is taken`);
    const worker = ctx.pool.workers.find((w) => w.pid === near.appData.workerPid && !w.closed && !w.died);
    if (!worker) throw invalidState('the worker of that router is gone');
    let router;
    try {
      router = await worker.createRouter({ mediaCodecs: codecs, appData: {} });
    } catch (error) {
      throw invalidParams(`mediaCodecs: ${error.message}`);
    }
    ctx.registry.addRouter(router, key, worker.pid);
    let reason = 'close';
    router.on('workerclose', () => { reason = 'workerclose'; });
    router.observer.once('close', () => ctx.notify('router.closed', { routerId: router.id, roomId: key, reason }));
    return { routerId: router.id, roomId: key, workerPid: worker.pid, rtpCapabilities: router.rtpCapabilities };
  },

  // Make a producer of one router available on another (mediasoup pipeToRouter, new id).
  'router.pipeProducer': async (p, ctx) => {
    const producer = ctx.registry.producer(v.string(p, 'producerId'));
    const target = ctx.registry.router(v.string(p, 'routerId'));
    const source = ctx.registry.router(producer.appData.routerId);
    if (source === target) throw invalidState('the producer is on that router already');
    const { pipeProducer } = await source.pipeToRouter({ producerId: producer.id, router: target, keepId: false });
    ctx.registry.addProducer(pipeProducer, target.id);
    pipeProducer.observer.once('close', () => ctx.notify('producer.closed', { producerId: pipeProducer.id, transportId: null, reason: 'pipe' }));
    return { producerId: pipeProducer.id, kind: pipeProducer.kind, type: pipeProducer.type };
  },

  'transport.createWebRtc': async (p, ctx) => {
    const routerId = v.string(p, 'routerId');
    const router = ctx.registry.router(routerId);
    const enableUdp = v.bool(p, 'enableUdp', true);
    const enableTcp = v.bool(p, 'enableTcp', true);
    if (!enableUdp && !enableTcp) throw invalidParams('params.enableUdp/enableTcp: at least one must be true');
    const webRtcServer = ctx.pool.webRtcServer(router.appData.workerPid);
    if (!webRtcServer) throw invalidState('the worker of that router is gone');
    const transport = await router.createWebRtcTransport({
      webRtcServer,
      enableUdp,
      enableTcp,
      preferUdp: v.bool(p, 'preferUdp', true),
      initialAvailableOutgoingBitrate: v.int(p, 'initialAvailableOutgoingBitrate', { fallback: 1_000_000, min: 10_000, max: 100_000_000 }),
      appData: { ...(v.obj(p, 'appData', { optional: true }) ?? {}) },
    });
    wireTransport(ctx, transport, routerId);
    return {
      transportId: transport.id,
      iceParameters: transport.iceParameters,
      iceCandidates: transport.iceCandidates,
      dtlsParameters: transport.dtlsParameters,
      sctpParameters: transport.sctpParameters ?? null,
    };
  },

  'transport.connect': async (p, ctx) => {
    const transport = ctx.registry.transport(v.string(p, 'transportId'));
    const dtlsParameters = v.obj(p, 'dtlsParameters');
    if (transport.type !== 'webrtc') throw invalidState('transport.connect is for WebRTC transports; use transport.connectPlain');
    await transport.connect({ dtlsParameters });
    return {};
  },

  'transport.restartIce': async (p, ctx) => {
    const transport = ctx.registry.transport(v.string(p, 'transportId'));
    if (typeof transport.restartIce !== 'function') throw invalidState('only WebRTC transports restart ICE');
    return { iceParameters: await transport.restartIce() };
  },

  'transport.createPlain': async (p, ctx) => {
    const routerId = v.string(p, 'routerId');
    const router = ctx.registry.router(routerId);
    const enableSrtp = v.bool(p, 'enableSrtp', false);
    const transport = await router.createPlainTransport({
      listenInfo: {
        protocol: 'udp',
        ip: ctx.config.plainListenIp,
        portRange: { min: ctx.config.rtcMinPort, max: ctx.config.rtcMaxPort },
      },
      rtcpMux: v.bool(p, 'rtcpMux', true),
      comedia: v.bool(p, 'comedia', false),
      enableSrtp,
      // Validated even when SRTP is off, so a typo is never silently ignored.
      srtpCryptoSuite: ((suite) => (enableSrtp ? suite : undefined))(
        v.oneOf(p, 'srtpCryptoSuite', ['AEAD_AES_256_GCM', 'AEAD_AES_128_GCM', 'AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32'], { fallback: 'AES_CM_128_HMAC_SHA1_80' }),
      ),
      appData: { ...(v.obj(p, 'appData', { optional: true }) ?? {}) },
    });
    wireTransport(ctx, transport, routerId);
    return {
      transportId: transport.id,
      tuple: tupleOf(transport.tuple),
      rtcpTuple: tupleOf(transport.rtcpTuple) ?? null,
      srtpParameters: transport.srtpParameters ?? null,
    };
  },

  'transport.connectPlain': async (p, ctx) => {
    const transport = ctx.registry.transport(v.string(p, 'transportId'));
    if (transport.type !== 'plain') throw invalidState('transport.connectPlain is for plain transports');
    await transport.connect({
      ip: v.ip(p, 'ip', { optional: true }),
      port: v.int(p, 'port', { optional: true, min: 1, max: 65535 }),
      rtcpPort: v.int(p, 'rtcpPort', { optional: true, min: 1, max: 65535 }),
      srtpParameters: v.obj(p, 'srtpParameters', { optional: true }),
    });
    return { tuple: tupleOf(transport.tuple), rtcpTuple: tupleOf(transport.rtcpTuple) ?? null };
  },

  'transport.produce': async (p, ctx) => {
    const transport = ctx.registry.transport(v.string(p, 'transportId'));
    const producer = await transport.produce({
      kind: v.oneOf(p, 'kind', ['audio', 'video']),
      rtpParameters: v.obj(p, 'rtpParameters'),
      paused: v.bool(p, 'paused', false),
      keyFrameRequestDelay: v.int(p, 'keyFrameRequestDelay', { optional: true, max: 10000 }),
      appData: { ...(v.obj(p, 'appData', { optional: true }) ?? {}) },
    });
    const transportId = transport.id;
    ctx.registry.addProducer(producer, transport.appData.routerId);
    let reason = 'close';
    producer.on('transportclose', () => { reason = 'transportclose'; });
    producer.observer.once('close', () => {
      ctx.dynacast?.forget(producer.id);
      ctx.notify('producer.closed', { producerId: producer.id, transportId, reason });
    });
    producer.on('score', (score) => ctx.notify('producer.score', { producerId: producer.id, score }));
    return { producerId: producer.id, kind: producer.kind, type: producer.type };
  },

  'transport.consume': async (p, ctx) => {
    const transport = ctx.registry.transport(v.string(p, 'transportId'));
    const producerId = v.string(p, 'producerId');
    ctx.registry.producer(producerId);
    const rtpCapabilities = v.obj(p, 'rtpCapabilities');
    const router = ctx.registry.router(transport.appData.routerId);
    if (!router.canConsume({ producerId, rtpCapabilities })) {
      throw invalidState(`rtpCapabilities cannot consume producer ${producerId}`);
    }
    const preferredLayers = v.obj(p, 'preferredLayers', { optional: true });
    const consumer = await transport.consume({
      producerId,
      rtpCapabilities,
      paused: v.bool(p, 'paused', true),
      preferredLayers,
      appData: { ...(v.obj(p, 'appData', { optional: true }) ?? {}) },
    });
    ctx.registry.addConsumer(consumer, transport.appData.routerId);
    ctx.framerate?.watch(consumer, ctx.registry.producer(producerId), transport);
    const id = consumer.id;
    let reason = 'close';
    consumer.on('transportclose', () => { reason = 'transportclose'; });
    consumer.on('producerclose', () => { reason = 'producerclose'; });
    consumer.observer.once('close', () => ctx.notify('consumer.closed', { consumerId: id, producerId, reason }));
    consumer.on('producerpause', () => ctx.notify('consumer.producerPause', { consumerId: id, producerId }));
    consumer.on('producerresume', () => ctx.notify('consumer.producerResume', { consumerId: id, producerId }));
    consumer.on('score', (score) => ctx.notify('consumer.score', { consumerId: id, score }));
    consumer.on('layerschange', (layers) => ctx.notify('consumer.layersChange', { consumerId: id, layers: layers ?? null }));
    // Dynacast: what this producer's consumers want changes with each of these.
    const wantedChanged = () => ctx.dynacast?.update(producerId);
    for (const event of ['pause', 'resume', 'close']) consumer.observer.on(event, wantedChanged);
    wantedChanged();
    return {
      consumerId: id,
      producerId,
      kind: consumer.kind,
      type: consumer.type,
      rtpParameters: consumer.rtpParameters,
      producerPaused: consumer.producerPaused,
    };
  },

  // Bandwidth caps (bits per second; 0 lifts the cap): what a publisher may send us,
  // what the SFU may send a subscriber (mediasoup's estimate stays below it).
  'transport.setMaxIncomingBitrate': async (p, ctx) => {
    await ctx.registry.transport(v.string(p, 'transportId')).setMaxIncomingBitrate(v.int(p, 'bitrate', { min: 0, max: 1_000_000_000 }));
    return {};
  },
  'transport.setMaxOutgoingBitrate': async (p, ctx) => {
    const transport = ctx.registry.transport(v.string(p, 'transportId'));
    if (transport.type !== 'webrtc') throw invalidState('only WebRTC transports take a max outgoing bitrate');
    await transport.setMaxOutgoingBitrate(v.int(p, 'bitrate', { min: 0, max: 1_000_000_000 }));
    return {};
  },

  'transport.close': async (p, ctx) => { ctx.registry.transport(v.string(p, 'transportId')).close(); return {}; },
  'transport.getStats': async (p, ctx) => ({ stats: await ctx.registry.transport(v.string(p, 'transportId')).getStats() }),

  'producer.pause': async (p, ctx) => { await ctx.registry.producer(v.string(p, 'producerId')).pause(); return {}; },
  'producer.resume': async (p, ctx) => { await ctx.registry.producer(v.string(p, 'producerId')).resume(); return {}; },
  'producer.close': async (p, ctx) => { ctx.registry.producer(v.string(p, 'producerId')).close(); return {}; },
  'producer.getStats': async (p, ctx) => ({ stats: await ctx.registry.producer(v.string(p, 'producerId')).getStats() }),

  'consumer.pause': async (p, ctx) => { await ctx.registry.consumer(v.string(p, 'consumerId')).pause(); return {}; },
  'consumer.resume': async (p, ctx) => { await ctx.registry.consumer(v.string(p, 'consumerId')).resume(); return {}; },
  'consumer.close': async (p, ctx) => { ctx.registry.consumer(v.string(p, 'consumerId')).close(); return {}; },
  'consumer.requestKeyFrame': async (p, ctx) => { await ctx.registry.consumer(v.string(p, 'consumerId')).requestKeyFrame(); return {}; },
  'consumer.setPreferredLayers': async (p, ctx) => {
    const consumer = ctx.registry.consumer(v.string(p, 'consumerId'));
    const spatialLayer = v.int(p, 'spatialLayer', { max: 16 });
    const temporalLayer = v.int(p, 'temporalLayer', { optional: true, max: 16 });
    // What the tile wants; the link may cap it lower (framerate.js).
    if (ctx.framerate) await ctx.framerate.setWanted(consumer, spatialLayer, temporalLayer);
    else await consumer.setPreferredLayers({ spatialLayer, temporalLayer });
    ctx.dynacast?.update(consumer.producerId);
    return {};
  },
  'consumer.setPriority': async (p, ctx) => {
    await ctx.registry.consumer(v.string(p, 'consumerId')).setPriority(v.int(p, 'priority', { min: 1, max: 255 }));
    return {};
  },
  'consumer.getStats': async (p, ctx) => {
    const consumer = ctx.registry.consumer(v.string(p, 'consumerId'));
    return { stats: await consumer.getStats(), priority: consumer.priority };
  },

  'observer.createAudioLevel': async (p, ctx) => {
    const routerId = v.string(p, 'routerId');
    const router = ctx.registry.router(routerId);
    const observer = await router.createAudioLevelObserver({
      maxEntries: v.int(p, 'maxEntries', { fallback: 1, min: 1, max: 100 }),
      threshold: v.int(p, 'threshold', { fallback: -80, min: -127, max: 0 }),
      interval: v.int(p, 'interval', { fallback: 1000, min: 100, max: 60000 }),
    });
    return wireObserver(ctx, observer, router, (o, base) => {
      o.on('volumes', (volumes) => ctx.notify('observer.volumes', {
        ...base, volumes: volumes.map((x) => ({ producerId: x.producer.id, volume: x.volume })),
      }));
      o.on('silence', () => ctx.notify('observer.silence', base));
    });
  },

  'observer.createActiveSpeaker': async (p, ctx) => {
    const routerId = v.string(p, 'routerId');
    const router = ctx.registry.router(routerId);
    const observer = await router.createActiveSpeakerObserver({
      interval: v.int(p, 'interval', { fallback: 300, min: 100, max: 60000 }),
    });
    return wireObserver(ctx, observer, router, (o, base) => {
      o.on('dominantspeaker', ({ producer }) => ctx.notify('observer.activeSpeaker', { ...base, producerId: producer.id }));
    });
  },

  'observer.addProducer': async (p, ctx) => {
    const observer = ctx.registry.observer(v.string(p, 'observerId'));
    await addSpeaker(observer, ctx.registry.producer(v.string(p, 'producerId')));
    return {};
  },
  'observer.removeProducer': async (p, ctx) => {
    const observer = ctx.registry.observer(v.string(p, 'observerId'));
    await removeSpeaker(observer, v.string(p, 'producerId'));
    return {};
  },
  'observer.close': async (p, ctx) => { ctx.registry.observer(v.string(p, 'observerId')).close(); return {}; },
};

function wireObserver(ctx, observer, router, attach) {
  ctx.registry.addObserver(observer, router.id);
  attach(observer, { observerId: observer.id, routerId: router.id, roomId: router.appData.roomId });
  return { observerId: observer.id };
}

export const methods = handlers;
