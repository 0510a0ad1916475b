// Small param validators; each names the field it refuses.
import { invalidParams } from './errors.js';

const describe = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

export function object(value, field = 'params') {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidParams(`${field}: expected object, got ${describe(value)}`);
  }
  return value;
}

export function string(params, name, { optional = false, max = 256 } = {}) {
  const v = params[name];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > max) {
    throw invalidParams(`params.${name}: expected non-empty string (max ${max}), got ${describe(v)}`);
  }
  return v;
}

export function bool(params, name, fallback) {
  const v = params[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw invalidParams(`params.${name}: expected boolean, got ${describe(v)}`);
  return v;
}

export function int(params, name, { optional = false, fallback, min = 0, max = 2 ** 31 } = {}) {
  const v = params[name];
  if (v === undefined && (optional || fallback !== undefined)) return fallback;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw invalidParams(`params.${name}: expected integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

export function intList(params, name, { max = 64, min = 0, maxValue = 2 ** 31 } = {}) {
  const v = params[name];
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > max || !v.every((x) => Number.isInteger(x) && x >= min && x <= maxValue)) {
    throw invalidParams(`params.${name}: expected at most ${max} integers in ${min}..${maxValue}, got ${JSON.stringify(v).slice(0, 100)}`);
  }
  return v;
}

export function oneOf(params, name, values, { fallback } = {}) {
  const v = params[name];
  if (v === undefined && fallback !== undefined) return fallback;
  if (!values.includes(v)) {
    throw invalidParams(`params.${name}: expected one of ${values.map((x) => JSON.stringify(x)).join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v;
}

export function obj(params, name, { optional = false } = {}) {
  const v = params[name];
  if (v === undefined && optional) return undefined;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw invalidParams(`params.${name}: expected object, got ${describe(v)}`);
  }
  return v;
}

export function ip(params, name, { optional = false } = {}) {
  const v = string(params, name, { optional, max: 64 });
  if (v !== undefined && !/^[0-9a-fA-F:.]+$/.test(v)) {
    throw invalidParams(`params.${name}: expected an IP address, got ${JSON.stringify(v)}`);
  }
  return v;
}
