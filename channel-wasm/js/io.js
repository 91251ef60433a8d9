// The eventwire client's browser glue, by hand: open and close a WebSocket
// or an EventSource, POST an emit, run the timer, ask the token function,
// and call the app back (`Callbacks`). No decisions are made here; every
// signal goes to the channel's one function, cb(tag, n, data, status),
// which index.js makes to call the wasm's `io` export, where the Rust side
// (channel.rs) does the rest. One function instead of a closure per event
// handler, and a few imports instead of one per browser method, keep the
// package small. Tags: see `transport/mod.rs`. `n` is the connection generation (or, for a POST,
// the emit's reference) so that the Rust side can ignore stale signals.

const FRAME = 1;
const WELCOME = 2;
const HEARTBEAT = 3;
const CLOSED = 4;
const GONE = 5;
const POSTED = 6;
const TICK = 7;

/** The numbers `Callbacks.state` gets (channel.rs), as names. */
const STATES = ['connecting', 'open', 'reconnecting', 'closed'];
const TRANSPORTS = [null, 'websocket', 'sse'];

/** A WebSocket: text frames and the close reason. Binary frames are not
 * part of the protocol; `error` is always followed by `close`. */
export function openWebSocket(url, n, cb) {
  return attempt(() => {
    const s = new WebSocket(url);
    s.onmessage = (e) => typeof e.data === 'string' && cb(FRAME, n, e.data, 0);
    s.onclose = (e) => cb(GONE, n, e.reason, 0);
    return s;
  });
}

/** An EventSource opened with `named=false&heartbeat=event`: events reach
 * `onmessage`, the control events their own listeners. Its own reconnect
 * is switched off by closing it on the first error: the channel reconnects
 * with backoff and resumes from its own position instead. */
export function openEventSource(url, n, cb) {
  return attempt(() => {
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
  });
}

/** What `open` returns, or the message of what it threw (a malformed URL,
 * say): no exception crosses into wasm, so the glue needs no exception
 * handling (see `parse`). */
function attempt(open) {
  try {
    return open();
  } catch (e) {
    return String(e?.message ?? e);
  }
}

/** Either transport: detach first, so one that was let go never reports. */
export function close(t) {
  t.onmessage = t.onclose = t.onerror = null;
  t.close();
}

/** A socket that is closing drops the frame; its `close` requeues what
 * was in flight. */
export function send(s, text) {
  try {
    s.send(text);
  } catch {}
}

/** `JSON.parse`, or undefined (which JSON cannot express) for text that
 * is not JSON. */
export function parse(text) {
  try {
    return JSON.parse(text);
  } catch {}
}

/** `JSON.stringify(data)`, or what it threw (a cycle, a BigInt). */
export function stringify(data) {
  try {
    return JSON.stringify(data);
  } catch (e) {
    return e;
  }
}

/** `o[key]`, and undefined for a key of something that is no object. */
export const get = (o, key) => o?.[key];

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

/** An event id: `crypto.randomUUID()` where the page is a secure context,
 * 32 random hex digits otherwise. */
export function uuid() {
  const hex = () => ((Math.random() * 2 ** 32) >>> 0).toString(16).padStart(8, '0');
  return globalThis.crypto?.randomUUID?.() ?? hex() + hex() + hex() + hex();
}

/** An `Error` with a `code`, which every rejection and `onError` carries. */
export function failure(code, message, ...cause) {
  const e = new Error(message);
  e.code = code;
  if (cause.length) e.cause = cause[0];
  return e;
}

/** The app's side of one channel: the `onState` and `onError` listeners,
 * the handler functions by id (the Rust side keeps their patterns and says
 * which ids an event goes to), the promises of emits waiting for the
 * gateway, and the isolation of everything the app passed in. The Rust
 * side decides what to say and when; this only says it. */
export class Callbacks {
  constructor() {
    /** The state and transport last reported, for the `EventChannel` getters. */
    this.now = ['connecting', null];
    this.states = new Map();
    this.errors = new Map();
    this.pending = new Map();
    this.handlers = new Map();
    this.n = 0;
  }

  handler(id, f) {
    f ? this.handlers.set(id, f) : this.handlers.delete(id);
  }

  /** Calls handler `id`, unless it was unsubscribed meanwhile. */
  handle(id, event) {
    const f = this.handlers.get(id);
    f && this.call(f, event);
  }

  /** Adds an `onState` (or, with `errors`, an `onError`) listener; returns
   * the function that removes it. */
  listen(errors, f) {
    const id = ++this.n;
    const listeners = errors ? this.errors : this.states;
    listeners.set(id, f);
    return () => listeners.delete(id);
  }

  /** Calls an app function; what it throws goes to `onError` as
   * `handler_error`, so one bad handler stops nothing else. */
  call(f, a, b) {
    try {
      f(a, b);
    } catch (t) {
      this.report(failure('handler_error', typeof t?.message === 'string' ? t.message : 'a handler threw', t));
    }
  }

  /** A state change, to a copy of the listeners: one may add or remove
   * listeners while it runs. */
  state(s, t, attempt, recovered, delayMs) {
    const state = STATES[s];
    const info = { transport: TRANSPORTS[t], attempt };
    if (recovered < 2) info.recovered = !!recovered;
    if (delayMs === delayMs) info.delayMs = delayMs; // not NaN
    this.now = [state, info.transport];
    for (const f of [...this.states.values()]) this.call(f, state, info);
  }

  /** To every `onError` listener, or to `console.error` when there is none. */
  report(e) {
    const listeners = [...this.errors.values()];
    if (!listeners.length) console.error('eventwire:', e);
    for (const f of listeners) {
      try {
        f(e);
      } catch (t) {
        console.error('eventwire: onError threw', t);
      }
    }
  }

  error(code, message) {
    this.report(failure(code, message));
  }

  /** The promise of emit `ref`, settled by `resolve` or `reject`. */
  emit(ref) {
    return new Promise((resolve, reject) => this.pending.set(ref, [resolve, reject]));
  }

  #take(ref) {
    const p = this.pending.get(ref);
    this.pending.delete(ref);
    return p;
  }

  /** `r` is the gateway's receipt: an ack frame or a POST's answer. */
  resolve(ref, r) {
    this.#take(ref)?.[0]({ id: r.id, seq: r.seq, duplicate: r.duplicate === true });
  }

  reject(ref, code, message) {
    this.#take(ref)?.[1](failure(code, message));
  }
}
