// The eventwire client's browser I/O, by hand: open and close a WebSocket
// or an EventSource, POST an emit, run the timer, ask the token function.
// No decisions are made here; every signal goes to one wasm callback,
// cb(tag, n, data, status) (always all four: wasm-bindgen's debug glue
// checks every argument), where the Rust side (channel.rs) does the rest.
// One callback type instead of a closure per event handler, and a few
// imports instead of one per browser method, keep the package small.
// Tags: see `io.rs`. `n` is the connection generation (or, for a POST,
// the emit's reference) so that the Rust side can ignore stale signals.

const FRAME = 1;
const WELCOME = 2;
const HEARTBEAT = 3;
const CLOSED = 4;
const GONE = 5;
const POSTED = 6;
const TICK = 7;

/** A WebSocket: text frames and the close reason. Binary frames are not
 * part of the protocol; `error` is always followed by `close`. */
export function openWebSocket(url, n, cb) {
  const s = new WebSocket(url);
  s.onmessage = (e) => typeof e.data === 'string' && cb(FRAME, n, e.data, 0);
  s.onclose = (e) => cb(GONE, n, e.reason, 0);
  return s;
}

/** An EventSource opened with `named=false&heartbeat=event`: events reach
 * `onmessage`, the control events their own listeners. Its own reconnect
 * is switched off by closing it on the first error: the channel reconnects
 * with backoff and resumes from its own position instead. */
export function openEventSource(url, n, cb) {
  const s = new EventSource(url);
  const on = (tag) => (e) => cb(tag, n, e.data, 0);
  s.onmessage = on(FRAME);
  s.addEventListener('$welcome', on(WELCOME));
  s.addEventListener('$heartbeat', on(HEARTBEAT));
  s.addEventListener('$close', (e) => {
    s.close();
    cb(CLOSED, n, e.data, 0);
  });
  s.onerror = () => {
    s.close();
    cb(GONE, n, undefined, 0);
  };
  return s;
}

/** Either transport: detach first, so one that was let go never reports. */
export function close(t) {
  t.onmessage = t.onclose = t.onerror = null;
  t.close();
}

export function send(s, text) {
  s.send(text);
}

/** POSTs one envelope. `cb(POSTED, reference, body, status)`; status 0
 * when the network failed or the body was not JSON. */
export function post(url, body, authorization, reference, cb) {
  const headers = { 'content-type': 'application/json' };
  if (authorization) headers.authorization = authorization;
  fetch(url, { method: 'POST', headers, body })
    .then((r) => r.json().then((b) => [b, r.status]))
    .then(
      ([b, status]) => cb(POSTED, reference, b, status),
      () => cb(POSTED, reference, null, 0),
    );
}

/** Calls the `token` option (a function, maybe async): `cb(tag, n, token)`
 * once it settles, `cb(tag + 1, n, error)` if it throws or rejects. */
export function token(source, tag, n, cb) {
  Promise.resolve()
    .then(source)
    .then(
      (t) => cb(tag, n, t, 0),
      (e) => cb(tag + 1, n, e, 0),
    );
}

/** `cb(TICK)` after `ms`; returns the handle for `clearTimeout`. */
export function wake(cb, ms) {
  return setTimeout(cb, ms, TICK, 0, undefined, 0);
}

/** A promise with its settle functions: `[promise, resolve, reject]`. */
export function deferred() {
  let settle;
  const p = new Promise((resolve, reject) => (settle = [resolve, reject]));
  return [p, ...settle];
}

/** `crypto.randomUUID()` where the page is a secure context. */
export function uuid() {
  return globalThis.crypto?.randomUUID?.();
}
