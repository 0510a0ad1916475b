// The one dispatch point and the one error-reply point of the RPC. A bad
// message is answered, never allowed to close the socket or crash the process.
import { badMessage, toErrorBody, unknownMethod } from './errors.js';
import { log } from './log.js';
import { methods } from './methods.js';
import { object } from './validate.js';

/** Parse one text frame into {id, method, params}; throws RpcError with the id it could read. */
function parse(text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    throw Object.assign(badMessage('message is not valid JSON'), { requestId: null });
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    throw Object.assign(badMessage('message must be a JSON object'), { requestId: null });
  }
  const { id, method, params } = msg;
  if (!Number.isInteger(id) || id < 0) {
    throw Object.assign(badMessage('id: expected a non-negative integer'), { requestId: null });
  }
  if (typeof method !== 'string' || method.length === 0) {
    throw Object.assign(badMessage('method: expected a non-empty string'), { requestId: id });
  }
  return { id, method, params };
}

/** Handle one frame; returns the reply object (never throws). */
export async function handleFrame(data, isBinary, ctx) {
  let id = null;
  let method;
  let params;
  const t0 = performance.now();
  try {
    if (isBinary) throw badMessage('binary frames are not accepted; send JSON text');
    ({ id, method, params } = parse(data.toString('utf8')));
    const handler = Object.hasOwn(methods, method) ? methods[method] : undefined;
    if (!handler) throw unknownMethod(method);
    const result = await handler(object(params), ctx);
    log.debug('rpc', { id, method, ms: +(performance.now() - t0).toFixed(2) });
    ctx.metrics?.rpc(method, (performance.now() - t0) / 1000, 'ok');
    return { id, ok: true, data: result ?? {} };
  } catch (error) {
    if (error && 'requestId' in error) id = error.requestId;
    const body = toErrorBody(error);
    const fields = { id, method, code: body.code, error: body.message };
    if (body.code === 'INTERNAL') log.error('rpc failed', fields);
    else log.info('rpc refused', fields);
    // Only known method names become label values (a client cannot grow the series).
    const label = typeof method === 'string' && Object.hasOwn(methods, method) ? method : '<invalid>';
    ctx.metrics?.rpc(label, (performance.now() - t0) / 1000, body.code);
    return { id, ok: false, error: body };
  }
}
