// Settings from the environment, validated once at start-up.
import os from 'node:os';

const DEV_SECRET = 'dev-sfu-secret';

function int(name, fallback, { min = 0, max = 65535 } = {}) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer in ${min}..${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function str(name, fallback) {
  const raw = process.env[name];
  return raw === undefined || raw === '' ? fallback : raw;
}

// 127.0.0.0/8, ::1 and localhost (as settings.py's is_loopback).
export function isLoopback(address) {
  return address === 'localhost' || address === '::1' || address === '[::1]'
    || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address);
}

export function loadConfig() {
  const env = str('MEDIAPLANE_ENV', 'dev');
  let secret = str('MEDIAPLANE_SFU_SECRET', undefined);
  if (!secret || secret === DEV_SECRET) {
    if (env !== 'dev' && env !== 'test') {
      throw new Error('MEDIAPLANE_SFU_SECRET must be set to a non-default value outside dev/test');
    }
    secret = DEV_SECRET;
  }
  const config = {
    env,
    host: str('MEDIAPLANE_SFU_HOST', '127.0.0.1'),
    port: int('MEDIAPLANE_SFU_PORT', 4443),
    secret,
    numWorkers: int('MEDIAPLANE_SFU_NUM_WORKERS', os.availableParallelism(), { min: 1, max: 256 }),
    rtcMinPort: int('MEDIAPLANE_RTC_MIN_PORT', 40000, { min: 1024 }),
    rtcMaxPort: int('MEDIAPLANE_RTC_MAX_PORT', 49999, { min: 1024 }),
    rtcListenIp: str('MEDIAPLANE_RTC_LISTEN_IP', '127.0.0.1'),
    rtcAnnouncedAddress: str('MEDIAPLANE_RTC_ANNOUNCED_ADDRESS', undefined),
    // Worker i's WebRtcServer listens on UDP and TCP rtcServerPort + i; unset: one port
    // per worker (UDP and TCP each) from the RTC range.
    rtcServerPort: int('MEDIAPLANE_RTC_SERVER_PORT', undefined, { min: 1024 }),
    plainListenIp: str('MEDIAPLANE_PLAIN_LISTEN_IP', '127.0.0.1'),
    maxMessageBytes: int('MEDIAPLANE_SFU_MAX_MESSAGE_BYTES', 262144, { min: 1024, max: 64 * 1024 * 1024 }),
    logLevel: str('MEDIAPLANE_SFU_LOG_LEVEL', 'info'),
    // When set, GET /metrics needs `Authorization: Bearer <token>` (docs/operations.md).
    metricsToken: str('MEDIAPLANE_METRICS_TOKEN', undefined),
    workerLogLevel: str('MEDIAPLANE_SFU_WORKER_LOG_LEVEL', 'warn'),
  };
  if (config.rtcMinPort > config.rtcMaxPort) {
    throw new Error('MEDIAPLANE_RTC_MIN_PORT must not exceed MEDIAPLANE_RTC_MAX_PORT');
  }
  if (config.rtcServerPort !== undefined && config.rtcServerPort + config.numWorkers - 1 > 65535) {
    throw new Error('MEDIAPLANE_RTC_SERVER_PORT + MEDIAPLANE_SFU_NUM_WORKERS - 1 must not exceed 65535');
  }
  const exposed = [config.host, config.rtcListenIp, config.plainListenIp, config.rtcAnnouncedAddress]
    .filter((a) => a && !isLoopback(a));
  if (config.secret === DEV_SECRET && exposed.length) {
    throw new Error(`the repository's development secret may not be used on a non-loopback `
      + `address (${exposed.join(', ')}): set MEDIAPLANE_SFU_SECRET`);
  }
  return config;
}

// The listen infos of worker `slot`'s WebRtcServer: one UDP and one TCP socket, on the
// RTC address, announcing the announced address (ICE candidates carry it).
export function webRtcServerListenInfos(config, slot) {
  const where = config.rtcServerPort !== undefined
    ? { port: config.rtcServerPort + slot }
    : { portRange: { min: config.rtcMinPort, max: config.rtcMaxPort } };
  const base = { ip: config.rtcListenIp, announcedAddress: config.rtcAnnouncedAddress, ...where };
  return [{ ...base, protocol: 'udp' }, { ...base, protocol: 'tcp' }];
}

// Router codecs, as mediasoup-demo offers them.
export const mediaCodecs = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000, parameters: { 'x-google-start-bitrate': 1000 } },
  { kind: 'video', mimeType: 'video/VP9', clockRate: 90000, parameters: { 'profile-id': 0 } },
  { kind: 'video', mimeType: 'video/VP9', clockRate: 90000, parameters: { 'profile-id': 2 } },
  {
    kind: 'video', mimeType: 'video/H264', clockRate: 90000,
    parameters: { 'packetization-mode': 1, 'profile-level-id': '42e01f', 'level-asymmetry-allowed': 1 },
  },
  {
    kind: 'video', mimeType: 'video/H264', clockRate: 90000,
    parameters: { 'packetization-mode': 1, 'profile-level-id': '4d0032', 'level-asymmetry-allowed': 1 },
  },
];
