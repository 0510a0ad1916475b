// Bearer-secret check of the WebSocket upgrade request.
import crypto from 'node:crypto';

const digest = (value) => crypto.createHash('sha256').update(value, 'utf8').digest();

/** Prepare the expected secret once; returns `check(authorizationHeader) -> boolean`. */
export function bearerCheck(secret) {
  const expected = digest(secret);
  return (header) => {
    const match = /^Bearer +(.+)$/i.exec(typeof header === 'string' ? header : '');
    // Compare fixed-length digests with timingSafeEqual: constant time, and
    // the secret's length is not revealed either.
    const equal = crypto.timingSafeEqual(digest(match ? match[1] : ''), expected);
    return equal && match !== null;
  };
}
