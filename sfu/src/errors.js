// The RPC's typed errors. Handlers throw these; rpc.js turns every error,
// typed or not, into one error reply through toErrorBody().
import { NotFoundError, UnsupportedError, WorkerClosedError } from 'mediasoup/errors';

/** @typedef {'BAD_MESSAGE'|'UNKNOWN_METHOD'|'INVALID_PARAMS'|'NOT_FOUND'|'INVALID_STATE'|'INTERNAL'} ErrorCode */

export class RpcError extends Error {
  /**
   * @param {ErrorCode} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
  }
}

export const badMessage = (m) => new RpcError('BAD_MESSAGE', m);
export const unknownMethod = (m) => new RpcError('UNKNOWN_METHOD', `unknown method: ${JSON.stringify(m.length > 100 ? `${m.slice(0, 100)}...` : m)}`);
export const invalidParams = (m) => new RpcError('INVALID_PARAMS', m);
export const notFound = (what, id) => new RpcError('NOT_FOUND', `${what} not found: ${JSON.stringify(id)}`);
export const invalidState = (m) => new RpcError('INVALID_STATE', m);

// Plain Errors the worker raises for a request that conflicts with the
// object's state (e.g. an SSRC or MID already used on the transport).
const WORKER_STATE_CONFLICT = /\balready (exists|called|in use)\b/i;

/** Whether the error was created inside mediasoup's Node library. */
export function raisedByMediasoup(error) {
  const frame = String(error.stack ?? '').split('\n').find((line) => /^\s+at /.test(line)) ?? '';
  return /[\\/]mediasoup[\\/]node[\\/]lib[\\/]/.test(frame);
}

/**
 * Map any thrown value to the reply's {code, message}.
 * @param {unknown} error
 * @returns {{code: ErrorCode, message: string}}
 */
export function toErrorBody(error) {
  if (error instanceof RpcError) return { code: error.code, message: error.message };
  const message = String((error instanceof Error ? error.message : error) || 'unknown error');
  if (error instanceof NotFoundError) return { code: 'NOT_FOUND', message };
  // mediasoup (server side) has no InvalidStateError: a closed worker/channel is
  // WorkerClosedError. The name check keeps mediasoup-client style errors typed too.
  if (error instanceof WorkerClosedError || error instanceof UnsupportedError || error?.name === 'InvalidStateError') {
    return { code: 'INVALID_STATE', message };
  }
  // mediasoup's argument checks (and the worker's MS_THROW_TYPE_ERROR) are
  // TypeErrors; an engine TypeError raised in our own code is a bug: INTERNAL.
  if (error instanceof TypeError && raisedByMediasoup(error)) return { code: 'INVALID_PARAMS', message };
  if (error instanceof Error && WORKER_STATE_CONFLICT.test(message)) return { code: 'INVALID_STATE', message };
  return { code: 'INTERNAL', message };
}
