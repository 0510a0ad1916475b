// The RPC's typed errors. Handlers throw these; rpc.js turns every error,
// typed or not, into one error reply.
import { NotFoundError, UnsupportedError, WorkerClosedError } from 'mediasoup/errors';

export class RpcError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export const badMessage = (m) => new RpcError('BAD_MESSAGE', m);
export const unknownMethod = (m) => new RpcError('UNKNOWN_METHOD', `unknown method: ${m}`);
export const invalidParams = (m) => new RpcError('INVALID_PARAMS', m);
export const notFound = (what, id) => new RpcError('NOT_FOUND', `${what} not found: ${id}`);
export const invalidState = (m) => new RpcError('INVALID_STATE', m);

/** Map any thrown value to {code, message}. */
export function toErrorBody(error) {
  if (error instanceof RpcError) return { code: error.code, message: error.message };
  if (error instanceof NotFoundError) return { code: 'NOT_FOUND', message: error.message };
  if (error instanceof UnsupportedError || error instanceof WorkerClosedError) {
    return { code: 'INVALID_STATE', message: error.message };
  }
  if (error instanceof TypeError) return { code: 'INVALID_PARAMS', message: error.message };
  // The worker reports a state conflict as a plain Error ("connect() already
  // called", "ssrc already exists in RTP listener"): the caller's fault, not ours.
  if (/already (called|exists)/.test(String(error?.message))) {
    return { code: 'INVALID_STATE', message: error.message };
  }
  return { code: 'INTERNAL', message: String(error?.message ?? error) };
}
