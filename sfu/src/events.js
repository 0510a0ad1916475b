// Registers each new mediasoup object and turns its events into the
// notifications of docs/sfu-rpc.md (and log lines carrying its ids).
import { log } from './log.js';

/**
 * @typedef {{registry: import('./registry.js').Registry, notify: (name: string, data: object) => void}} Ctx
 */

/** @param {Ctx} ctx @param {import('mediasoup').types.Router} router */
export function wireRouter(ctx, router, roomId, workerPid) {
  ctx.registry.addRouter(router, roomId, workerPid);
  const routerId = router.id;
  let reason = 'close';
  router.once('workerclose', () => { reason = 'workerclose'; });
  router.observer.once('close', () => {
    log.info('router closed', { roomId, routerId, workerPid, reason });
    ctx.notify('router.closed', { routerId, roomId, reason });
  });
  log.info('router created', { roomId, routerId, workerPid });
}

/** @param {Ctx} ctx @param {import('mediasoup').types.Transport} transport */
export function wireTransport(ctx, transport, router) {
  ctx.registry.addTransport(transport, router);
  const transportId = transport.id;
  const { roomId, routerId } = ctx.registry.meta(router);
  let reason = 'close';
  transport.once('routerclose', () => { reason = 'routerclose'; });
  transport.observer.once('close', () => {
    log.debug('transport closed', { roomId, routerId, transportId, reason });
    ctx.notify('transport.closed', { transportId, routerId, reason });
  });
  if (transport.type === 'webrtc') {
    transport.on('dtlsstatechange', (dtlsState) => {
      log.debug('transport dtls state', { roomId, transportId, dtlsState });
      ctx.notify('transport.dtlsStateChange', { transportId, dtlsState });
    });
    transport.on('icestatechange', (iceState) => {
      log.debug('transport ice state', { roomId, transportId, iceState });
      ctx.notify('transport.iceStateChange', { transportId, iceState });
    });
  }
  log.debug('transport created', { roomId, routerId, transportId, type: transport.type });
}

/** @param {Ctx} ctx @param {import('mediasoup').types.Producer} producer */
export function wireProducer(ctx, producer, transport) {
  ctx.registry.addProducer(producer, transport);
  const producerId = producer.id;
  const transportId = transport.id;
  const { roomId } = ctx.registry.meta(transport);
  let reason = 'close';
  producer.once('transportclose', () => { reason = 'transportclose'; });
  producer.observer.once('close', () => {
    log.debug('producer closed', { roomId, transportId, producerId, reason });
    ctx.notify('producer.closed', { producerId, transportId, reason });
  });
  producer.on('score', (score) => ctx.notify('producer.score', { producerId, score }));
  log.debug('producer created', { roomId, transportId, producerId, kind: producer.kind });
}

/** @param {Ctx} ctx @param {import('mediasoup').types.Consumer} consumer */
export function wireConsumer(ctx, consumer, transport) {
  ctx.registry.addConsumer(consumer, transport);
  const consumerId = consumer.id;
  const { producerId } = consumer;
  const { roomId } = ctx.registry.meta(transport);
  let reason = 'close';
  consumer.once('transportclose', () => { reason = 'transportclose'; });
  consumer.once('producerclose', () => { reason = 'producerclose'; });
  consumer.observer.once('close', () => {
    log.debug('consumer closed', { roomId, transportId: transport.id, consumerId, producerId, reason });
    ctx.notify('consumer.closed', { consumerId, producerId, reason });
  });
  consumer.on('producerpause', () => ctx.notify('consumer.producerPause', { consumerId, producerId }));
  consumer.on('producerresume', () => ctx.notify('consumer.producerResume', { consumerId, producerId }));
  consumer.on('score', (score) => ctx.notify('consumer.score', { consumerId, score }));
  consumer.on('layerschange', (layers) => ctx.notify('consumer.layersChange', { consumerId, layers: layers ?? null }));
  log.debug('consumer created', { roomId, transportId: transport.id, consumerId, producerId, kind: consumer.kind });
}

/** @param {Ctx} ctx @param {import('mediasoup').types.RtpObserver} observer */
export function wireObserver(ctx, observer, router) {
  ctx.registry.addObserver(observer, router);
  const { roomId, routerId } = ctx.registry.meta(router);
  const base = { observerId: observer.id, routerId, roomId };
  if (observer.type === 'audiolevel') {
    observer.on('volumes', (volumes) => ctx.notify('observer.volumes', {
      ...base,
      volumes: volumes.map(({ producer, volume }) => ({ producerId: producer.id, volume })),
    }));
    observer.on('silence', () => ctx.notify('observer.silence', base));
  } else {
    observer.on('dominantspeaker', ({ producer }) => ctx.notify('observer.activeSpeaker', { ...base, producerId: producer.id }));
  }
  observer.observer.once('close', () => log.debug('observer closed', base));
  log.debug('observer created', { ...base, type: observer.type });
}
