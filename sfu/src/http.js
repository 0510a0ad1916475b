// Plain HTTP on the RPC port: GET /healthz and GET /metrics. The WebSocket RPC
// upgrades on /rpc of the same server; anything else is a JSON 404.
import crypto from 'node:crypto';
import { log } from './log.js';

function send(res, status, body, contentType = 'application/json') {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
  res.end(text);
}

function bearerOk(req, token) {
  const header = req.headers.authorization ?? '';
  const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
  const expected = Buffer.from(token);
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

const error = (code, message) => ({ error: { code, message } });

/** The request handler of the SFU's HTTP server. */
export function httpHandler({ config, pool, metrics, clients }) {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, error('method_not_allowed', `${req.method} is not allowed here`));
      return;
    }
    if (path === '/healthz') {
      const workers = pool.workers.filter((w) => !w.closed && !w.died).length;
      const ok = workers > 0;
      send(res, ok ? 200 : 503, { status: ok ? 'ok' : 'no live mediasoup worker', workers, clients: clients() });
      return;
    }
    if (path === '/metrics') {
      if (config.metricsToken && !bearerOk(req, config.metricsToken)) {
        res.setHeader('WWW-Authenticate', 'Bearer');
        send(res, 401, error('unauthorized', 'missing or wrong metrics token'));
        return;
      }
      metrics.render()
        .then(({ body, contentType }) => send(res, 200, body, contentType))
        .catch((e) => {
          log.error('metrics failed', { error: String(e?.stack ?? e) });
          send(res, 500, error('internal', 'metrics failed'));
        });
      return;
    }
    send(res, 404, error('not_found', `no route ${path}; the RPC is a WebSocket on /rpc`));
  };
}
