// Settings from the environment, validated once at start-up. Names match
// src/mediaplane/settings.py (the Python launcher passes the same variables).
import net from 'node:net';
import os from 'node:os';

export const DEV_SECRET = 'dev-sfu-secret';
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'];
const WORKER_LOG_LEVELS = ['debug', 'warn', 'error', 'none'];
const DEV_ENVS = new Set(['dev', 'test']);

/** A setting that prevents start-up; its message names the variable. */
export class ConfigError extends Error {}

/**
 * @typedef {object} Config
 * @property {string} env
 * @property {string} host
 * @property {number} port            0 = pick a free port
 * @property {string} secret
 * @property {number} numWorkers
 * @property {number} rtcMinPort
 * @property {number} rtcMaxPort
 * @property {string} rtcListenIp
 * @property {string | undefined} rtcAnnouncedAddress
 * @property {string} plainListenIp
 * @property {number} maxMessageBytes
 * @property {string} logLevel
 * @property {string} workerLogLevel
 * @property {string[]} warnings      to be logged once logging is set up
 */

/**
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {Config}
 */
export function loadConfig(env = process.env) {
  const str = (name, fallback) => {
    const raw = env[name];
    return raw === undefined || raw.trim() === '' ? fallback : raw.trim();
  };
  const int = (name, fallback, min, max) => {
    const raw = str(name, undefined);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new ConfigError(`${name} must be an integer in ${min}..${max}, got ${JSON.stringify(raw)}`);
    }
    return value;
  };
  const ipAddress = (name, fallback) => {
    const value = str(name, fallback);
    if (!net.isIP(value)) throw new ConfigError(`${name} must be an IPv4 or IPv6 address, got ${JSON.stringify(value)}`);
    return value;
  };
  const choice = (name, fallback, values) => {
    const value = str(name, fallback);
    if (!values.includes(value)) {
      throw new ConfigError(`${name} must be one of ${values.join(', ')}, got ${JSON.stringify(value)}`);
    }
    return value;
  };

  const warnings = [];
  const mode = str('MEDIAPLANE_ENV', 'dev');
  let secret = str('MEDIAPLANE_SFU_SECRET', undefined);
  if (!DEV_ENVS.has(mode)) {
    if (!secret) {
      throw new ConfigError(`MEDIAPLANE_SFU_SECRET is not set: it is required when MEDIAPLANE_ENV=${mode} (only dev/test have a default)`);
    }
    if (secret === DEV_SECRET) {
      throw new ConfigError(`MEDIAPLANE_SFU_SECRET is the public dev default: set a private value when MEDIAPLANE_ENV=${mode}`);
    }
  } else if (!secret) {
    secret = DEV_SECRET;
    warnings.push(`MEDIAPLANE_SFU_SECRET is not set: using the dev default ${JSON.stringify(DEV_SECRET)} (MEDIAPLANE_ENV=${mode}); never do this in production`);
  }

  const config = {
    env: mode,
    host: str('MEDIAPLANE_SFU_HOST', '127.0.0.1'),
    port: int('MEDIAPLANE_SFU_PORT', 4443, 0, 65535),
    secret,
    numWorkers: int('MEDIAPLANE_SFU_NUM_WORKERS', os.availableParallelism(), 1, 256),
    rtcMinPort: int('MEDIAPLANE_RTC_MIN_PORT', 40000, 1024, 65535),
    rtcMaxPort: int('MEDIAPLANE_RTC_MAX_PORT', 49999, 1024, 65535),
    rtcListenIp: ipAddress('MEDIAPLANE_RTC_LISTEN_IP', '127.0.0.1'),
    rtcAnnouncedAddress: str('MEDIAPLANE_RTC_ANNOUNCED_ADDRESS', undefined),
    plainListenIp: ipAddress('MEDIAPLANE_PLAIN_LISTEN_IP', '127.0.0.1'),
    maxMessageBytes: int('MEDIAPLANE_SFU_MAX_MESSAGE_BYTES', 262144, 1024, 64 * 1024 * 1024),
    logLevel: choice('MEDIAPLANE_SFU_LOG_LEVEL', 'info', LOG_LEVELS),
    workerLogLevel: choice('MEDIAPLANE_SFU_WORKER_LOG_LEVEL', 'warn', WORKER_LOG_LEVELS),
    warnings,
  };
  if (config.rtcMinPort > config.rtcMaxPort) {
    throw new ConfigError(`MEDIAPLANE_RTC_MIN_PORT (${config.rtcMinPort}) must not exceed MEDIAPLANE_RTC_MAX_PORT (${config.rtcMaxPort})`);
  }
  if (['0.0.0.0', '::'].includes(config.rtcListenIp) && !config.rtcAnnouncedAddress) {
    warnings.push(`MEDIAPLANE_RTC_LISTEN_IP is ${config.rtcListenIp} and MEDIAPLANE_RTC_ANNOUNCED_ADDRESS is not set: ICE candidates will carry an unroutable address`);
  }
  return Object.freeze(config);
}

/** Router codecs, as mediasoup-demo offers them. */
export const mediaCodecs = Object.freeze([
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
]);
