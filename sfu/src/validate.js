// Small param validators. Each reads `source[name]`, returns the checked value
// (or the fallback when it is absent) and otherwise throws INVALID_PARAMS with
// a message that names the field: `params.kind: expected "audio" or "video", got "data"`.
// `path` is the field's parent in that message (default "params").
import net from 'node:net';
import { invalidParams } from './errors.js';

const describe = (v) => {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return typeof v;
};

const fail = (path, name, expected, v) => invalidParams(`${path}.${name}: expected ${expected}, got ${describe(v)}`);

const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The request's params: absent means {}; anything but an object is refused. */
export function object(value, field = 'params') {
  if (value === undefined) return {};
  if (!isPlainObject(value)) throw invalidParams(`${field}: expected object, got ${describe(value)}`);
  return value;
}

/** A non-empty string of at most `max` characters. */
export function string(source, name, { optional = false, max = 256, path = 'params' } = {}) {
  const v = source[name];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > max) {
    throw fail(path, name, `non-empty string of at most ${max} characters`, v);
  }
  return v;
}

/** A mediasoup object id. */
export const id = (source, name) => string(source, name, { max: 64 });

export function bool(source, name, fallback, { path = 'params' } = {}) {
  const v = source[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw fail(path, name, 'boolean', v);
  return v;
}

export function int(source, name, { optional = false, fallback, min = 0, max = 2 ** 31 - 1, path = 'params' } = {}) {
  const v = source[name];
  if (v === undefined && (optional || fallback !== undefined)) return fallback;
  if (!Number.isInteger(v) || v < min || v > max) throw fail(path, name, `integer in ${min}..${max}`, v);
  return v;
}

export function oneOf(source, name, values, { optional = false, fallback, path = 'params' } = {}) {
  const v = source[name];
  if (v === undefined && (optional || fallback !== undefined)) return fallback;
  if (!values.includes(v)) {
    const list = values.map((x) => JSON.stringify(x));
    const expected = list.length === 2 ? `${list[0]} or ${list[1]}` : `one of ${list.join(', ')}`;
    throw fail(path, name, expected, v);
  }
  return v;
}

export function obj(source, name, { optional = false, path = 'params' } = {}) {
  const v = source[name];
  if (v === undefined && optional) return undefined;
  if (!isPlainObject(v)) throw fail(path, name, 'object', v);
  return v;
}

/** An array of `min` or more items; `item(value, index)` may check each. */
export function array(source, name, { optional = false, min = 0, path = 'params', item } = {}) {
  const v = source[name];
  if (v === undefined && optional) return undefined;
  if (!Array.isArray(v) || v.length < min) throw fail(path, name, min > 0 ? `array of at least ${min} item(s)` : 'array', v);
  if (item) v.forEach((x, i) => item(x, `${path}.${name}[${i}]`));
  return v;
}

/** The user's appData: optional object, copied so the caller's frame is not kept. */
export function appData(source) {
  return { ...(obj(source, 'appData', { optional: true }) ?? {}) };
}

export function ip(source, name, { optional = false, path = 'params' } = {}) {
  const v = source[name];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || !net.isIP(v)) throw fail(path, name, 'an IP address', v);
  return v;
}

// Shapes of mediasoup parameters: just enough to name the wrong field;
// mediasoup validates the rest (its TypeErrors become INVALID_PARAMS too).

export function rtpParameters(source, name = 'rtpParameters') {
  const v = obj(source, name);
  const path = `params.${name}`;
  array(v, 'codecs', {
    min: 1,
    path,
    item: (c, p) => {
      if (!isPlainObject(c)) throw invalidParams(`${p}: expected object, got ${describe(c)}`);
      string(c, 'mimeType', { path: p, max: 64 });
      int(c, 'payloadType', { path: p, max: 127 });
      int(c, 'clockRate', { path: p, min: 1 });
    },
  });
  array(v, 'encodings', { optional: true, path });
  array(v, 'headerExtensions', { optional: true, path });
  return v;
}

export function rtpCapabilities(source, name = 'rtpCapabilities') {
  const v = obj(source, name);
  array(v, 'codecs', { optional: true, path: `params.${name}` });
  array(v, 'headerExtensions', { optional: true, path: `params.${name}` });
  return v;
}

export function dtlsParameters(source, name = 'dtlsParameters') {
  const v = obj(source, name);
  const path = `params.${name}`;
  oneOf(v, 'role', ['auto', 'client', 'server'], { optional: true, path });
  array(v, 'fingerprints', {
    min: 1,
    path,
    item: (f, p) => {
      if (!isPlainObject(f)) throw invalidParams(`${p}: expected object, got ${describe(f)}`);
      string(f, 'algorithm', { path: p, max: 16 });
      string(f, 'value', { path: p, max: 256 });
    },
  });
  return v;
}

export function srtpParameters(source, name = 'srtpParameters', { optional = false } = {}) {
  const v = obj(source, name, { optional });
  if (v === undefined) return undefined;
  oneOf(v, 'cryptoSuite', SRTP_CRYPTO_SUITES, { path: `params.${name}` });
  string(v, 'keyBase64', { path: `params.${name}`, max: 128 });
  return v;
}

export const SRTP_CRYPTO_SUITES = ['AEAD_AES_256_GCM', 'AEAD_AES_128_GCM', 'AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32'];

/** {spatialLayer, temporalLayer?} */
export function layers(source, name, { optional = false } = {}) {
  const v = obj(source, name, { optional });
  if (v === undefined) return undefined;
  const path = `params.${name}`;
  const spatialLayer = int(v, 'spatialLayer', { max: 15, path });
  const temporalLayer = int(v, 'temporalLayer', { optional: true, max: 15, path });
  return temporalLayer === undefined ? { spatialLayer } : { spatialLayer, temporalLayer };
}
