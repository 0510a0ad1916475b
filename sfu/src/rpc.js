// The one dispatch point (method name -> handler) and the one error-reply
// point of the RPC. A bad message is answered; it never closes the socket and
// never crashes the process.
import { badMessage, toErrorBody, unknownMethod } from './errors.js';
import { log } from './log.js';
import { methods } from './methods.js';
import { object } from './validate.js';

/** A refusal that knows which request id it answers (null if unreadable). */
const refuse = (error, requestId) => Object.assign(error, { requestId });

/**
 * Parse one text frame into {id, method, params}.
 * @param {string} text
 */
function parse(text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    throw refuse(badMessage('message is not valid JSON'), null);
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    throw refuse(badMessage('message must be a JSON object'), null);
  }
  const { id, method, params } = msg;
  if (!Number.isSafeInteger(id) || id < 0) {
    throw refuse(badMessage('id: expected a non-negative integer'), null);
  }
  if (typeof method !== 'string' || method.length === 0) {
    throw refuse(badMessage('method: expected a non-empty string'), id);
  }
  return { id, method, params };
}

/**
 * Handle one frame and return the reply object. Never throws.
 * @param {Buffer | ArrayBuffer | Buffer[]} data
 * @param {boolean} isBinary
 * @param {import('./methods.js').Ctx} ctx
 * @returns {Promise<{id: number | null, ok: true, data: object} | {id: number | null, ok: false, error: {code: string, message: string}}>}
 */
export async function handleFrame(data, isBinary, ctx) {
  let id = null;
  let method;
  const t0 = performance.now();
  try {
    if (isBinary) throw refuse(badMessage('binary frames are not accepted; send JSON text frames'), null);
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
    const request = parse(text);
    ({ id, method } = request);
    const handler = Object.hasOwn(methods, method) ? methods[method] : undefined;
    if (!handler) throw unknownMethod(method);
    const result = await handler(object(request.params), ctx);
    log.debug('rpc', { id, method, ms: +(performance.now() - t0).toFixed(2) });
    return { id, ok: true, data: result ?? {} };
  } catch (error) {
    if (error && typeof error === 'object' && 'requestId' in error) id = error.requestId;
    const body = toErrorBody(error);
    const fields = { id, method, code: body.code, error: body.message, ms: +(performance.now() - t0).toFixed(2) };
    if (body.code === 'INTERNAL') log.error('rpc failed', { ...fields, stack: error?.stack });
    else log.info('rpc refused', fields);
    return { id, ok: false, error: body };
  }
}
