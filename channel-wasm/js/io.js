// The eventwire client's browser glue, by hand: the wasm's imports (open
// and close a WebSocket or an EventSource, send, POST, the timer, the token
// function, and calling the app back) and the one way back in, `sig`.
// No decisions are made here: every signal goes to the wasm's `i` export
// with the channel's handle, a tag, a number (the connection generation,
// or an emit's reference) and the few fields the Rust side reads
// (src/abi.rs says how numbers and strings cross). Tags: src/transport.rs;
// fields: src/frames.rs.

const FRAME = 1;
const WELCOME = 2;
const HEARTBEAT = 3;
const CLOSED = 4;
const GONE = 5;
const POSTED = 6;
const TICK = 7;
const FAILED = 12;
const NOT_JSON = 13;
const NOT_OBJECT = 14;

/** The numbers the `state` import gets (channel.rs), as names. */
const STATES = ['connecting', 'open', 'reconnecting', 'closed'];
const TRANSPORTS = [null, 'websocket', 'sse'];

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The wasm's exports, once `bind` has run. */
let w;
/** The JS side of every channel, by handle. */
const channels = [];

export const bind = (exports) => (w = exports);

/** Views of the wasm's memory, made again when the memory has grown. */
let bytes = new Uint8Array(0);
let words;
const memory = () =>
  bytes.buffer == w.memory.buffer ? bytes : ((words = new Int32Array(w.memory.buffer)), (bytes = new Uint8Array(w.memory.buffer)));

/** Writes `strings` (at most nine) into the wasm's argument buffer for the
 * call that follows: their lengths in bytes first (-1 for what is not a
 * string), then the strings. ASCII is copied a character at a time (ids,
 * types and positions are ASCII), the rest with `encodeInto`: no view or
 * copy is made per string. */
export function put(strings) {
  let room = 36;
  for (const s of strings) if (typeof s == 'string') room += s.length * 3;
  const head = w.b(room);
  const m = memory();
  let at = head + 36;
  for (let k = 0; k < 9; k++) {
    const s = strings[k];
    let i = -1;
    if (typeof s == 'string') {
      for (i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c > 127) break;
        m[at + i] = c;
      }
      if (i < s.length) i += encoder.encodeInto(s.slice(i), m.subarray(at + i)).written;
      at += i;
    }
    words[(head >> 2) + k] = i;
  }
}

/** The string the wasm passed as a pointer and a length. */
const text = (at, n) => decoder.decode(memory().subarray(at, at + n));

/** Tells the wasm what happened to `ch`; `v` is the value it refers to,
 * which stays here (the channel's current value). */
function sig(ch, tag, n, v, a, b, c, strings = []) {
  ch.v = v;
  put(strings);
  w.i(ch.h, tag, n, a, b, c);
}

/** One frame, in one call: `JSON.parse` here, and the fields every kind of
 * frame might need (src/frames.rs, `field`) to the wasm, which decides
 * what it is. The event envelope is a WebSocket frame's `event` or, on
 * SSE, the frame itself. */
function frame(ch, tag, n, data, sse) {
  let v;
  try {
    v = JSON.parse(data);
  } catch {}
  if (!v || typeof v != 'object') return sig(ch, tag == CLOSED ? tag : v === undefined ? NOT_JSON : NOT_OBJECT, n);
  const e = sse ? v : (v.event ?? v);
  sig(ch, tag, n, e, v.heartbeat_ms, v.max_event_bytes, v.recovered, [
    v.op,
    e.id,
    e.source,
    e.type,
    e.seq,
    v.ref,
    v.code,
    v.message,
    v.position,
  ]);
}

/** An `Error` with a `code`, which every rejection and `onError` carries;
 * `cause`, when given, is what the app's code threw. */
export const failure = (code, message, cause) =>
  Object.assign(Error(message, cause === undefined ? cause : { cause }), { code });

/** An emit's `data` as the JSON the gateway gets (`undefined` stays
 * undefined: the envelope then has no `data`). What JSON cannot hold (a
 * cycle, a BigInt) throws `invalid_event`. index.js and share.js both
 * encode with it. */
export const json = (data) => {
  try {
    return JSON.stringify(data);
  } catch (e) {
    throw failure('invalid_event', e?.message ?? String(e));
  }
};

/** An event id or a channel instance: `crypto.randomUUID()` where the page
 * is a secure context, else 128 random bits as four decimal numbers. */
export const uuid = () => crypto.randomUUID?.() ?? crypto.getRandomValues(new Uint32Array(4)).join('-');

/** The wasm's imports (src/abi.rs names each letter). */
export const imports = {
  n: Date.now,
  r: Math.random,
  /** Opens a WebSocket (`kind` 0) or an EventSource opened with
   * `named=false&heartbeat=event` (1): events reach `onmessage`, the
   * control events their own listeners. EventSource's own reconnect is
   * switched off by closing it on the first error: the channel reconnects
   * with backoff and resumes from its own position instead. */
  o(h, kind, n, at, len) {
    const ch = channels[h];
    try {
      if (kind) {
        const s = (ch.t = new EventSource(text(at, len)));
        const on = (tag) => (e) => frame(ch, tag, n, e.data, 1);
        s.onmessage = on(FRAME);
        s.addEventListener('$welcome', on(WELCOME));
        s.addEventListener('$heartbeat', () => sig(ch, HEARTBEAT, n));
        s.addEventListener('$close', (e) => {
          s.close();
          frame(ch, CLOSED, n, e.data, 1);
        });
        s.onerror = () => {
          s.close();
          sig(ch, GONE, n);
        };
      } else {
        // Binary frames are not part of the protocol; `error` is always
        // followed by `close`, whose reason is the gateway's code.
        const s = (ch.t = new WebSocket(text(at, len)));
        s.onmessage = (e) => typeof e.data == 'string' && frame(ch, FRAME, n, e.data);
        s.onclose = (e) => sig(ch, GONE, n, 0, 0, 0, 0, [, , , , , , e.reason]);
      }
    } catch (e) {
      // A malformed URL, say: no exception crosses into wasm.
      sig(ch, FAILED, n, 0, 0, 0, 0, [, , , , , , , String(e?.message ?? e)]);
    }
  },
  /** A socket that is closing drops the frame; its `close` requeues what
   * was in flight. */
  s(h, at, len) {
    try {
      channels[h].t.send(text(at, len));
    } catch {}
  },
  /** Either transport: detach first, so one that was let go never reports. */
  x(h) {
    const t = channels[h].t;
    channels[h].t = null;
    if (t) {
      t.onmessage = t.onclose = t.onerror = null;
      t.close();
    }
  },
  /** POSTs one envelope; status 0 when the network failed or the answer
   * was not JSON. */
  p(h, ref, url, urlLen, body, bodyLen, auth, authLen) {
    const ch = channels[h];
    const headers = { 'content-type': 'application/json' };
    if (authLen) headers.authorization = text(auth, authLen);
    fetch(text(url, urlLen), { method: 'POST', headers, body: text(body, bodyLen) })
      .then((r) => r.json().then((b) => [b, r.status]))
      .then(
        ([b, status]) => sig(ch, POSTED, ref, b, status, 0, 0, [, , , , , , b?.error?.code, b?.error?.message]),
        () => sig(ch, POSTED, ref, null, 0),
      );
  },
  /** Calls the `token` option (a function, maybe async): `tag` with the
   * token once it settles, `tag + 1` with what it threw. */
  t(h, tag, n) {
    const ch = channels[h];
    Promise.resolve()
      .then(ch.token)
      .then(
        (t) => sig(ch, tag, n, 0, 0, 0, 0, [t]),
        (e) => sig(ch, tag + 1, n, e),
      );
  },
  /** `TICK` after `ms`, instead of the pending one; a negative `ms` only
   * cancels. At most after 2e9 ms (23 days): `setTimeout` fires a delay of
   * 2^31 ms or more at once, and a deadline that far (an `attemptTimeoutMs`
   * or `maxBackoffMs` that large) would wake the channel in a loop. Woken
   * early, the wasm finds nothing due and asks again. */
  w(h, ms) {
    const ch = channels[h];
    clearTimeout(ch.timer);
    if (ms >= 0) ch.timer = setTimeout(sig, Math.min(ms, 2e9), ch, TICK, 0);
  },
  /** A state change, to a copy of the listeners: one may add or remove
   * listeners while it runs. */
  c(h, s, t, attempt, recovered, delayMs) {
    const ch = channels[h];
    const state = STATES[s];
    const info = { transport: TRANSPORTS[t], attempt };
    if (recovered < 2) info.recovered = !!recovered;
    if (delayMs === delayMs) info.delayMs = delayMs; // not NaN
    ch.state(state, info);
  },
  /** Calls handler `id` with the event, unless it was unsubscribed meanwhile. */
  d(h, id) {
    channels[h].handle(id, channels[h].v);
  },
  /** The current value is the gateway's receipt: an ack frame or a POST's answer. */
  a(h, ref) {
    const r = channels[h].v;
    channels[h].settle(ref, 0, { id: r.id, seq: r.seq, duplicate: r.duplicate === true });
  },
  /** An error: an emit's rejection, for the `onError` listeners (-1), or
   * what the call in progress throws (-2). */
  f(h, ref, code, codeLen, message, messageLen) {
    const ch = channels[h];
    const e = failure(text(code, codeLen), text(message, messageLen));
    ref == -1 ? ch.report(e) : ref == -2 ? (ch.thrown = e) : ch.settle(ref, 1, e);
  },
  g(h) {
    channels[h].report(channels[h].v);
  },
  q(h, at, len) {
    channels[h].answer = text(at, len);
  },
};

/** Resolves once `cb` reports `open`; rejects with `closed` if it closes
 * first, or, after the `connectTimeoutMs` of `options` (default 10 s; 0, or
 * 2^31 ms and more, which `setTimeout` would fire at once: no limit), calls
 * `close()` and rejects with `connect_timeout`.
 * Both `connect`s (index.js, and share.js's) wait with it. */
export const opened = (cb, { url, connectTimeoutMs }, close) =>
  new Promise((resolve, reject) => {
    const ms = connectTimeoutMs ?? 10_000;
    /** Settles the wait: with `e`, an error, it rejects. */
    const end = (e) => {
      off();
      clearTimeout(timer);
      e ? reject(e) : resolve();
    };
    const off = cb.listen(0, (state) =>
      state == 'open' ? end() : state == 'closed' && end(failure('closed', 'the channel was closed before it connected')),
    );
    const timer =
      ms > 0 &&
      ms < 2 ** 31 &&
      setTimeout(() => {
        end(failure('connect_timeout', `no connection to ${url} within ${ms} ms`));
        close();
      }, ms);
  });

/** The promises of emits waiting for the gateway, by reference (unique
 * across channels): `[resolve, reject]`, settled by a channel's `settle`. */
export const pending = new Map();

/** The app's side of a channel: the `onState` and `onError` listeners,
 * the handler functions by id (the Rust side keeps their patterns and says
 * which ids an event goes to), and the isolation of everything the app
 * passed in. share.js uses it too (`Callbacks()`, no handle). Given the handle
 * `h` of a wasm channel, it is also that channel's JS side, which the
 * imports reach by `h`: its transport and timer, the `token` option, the
 * current value, and `settle` for its emits. The Rust side decides what to
 * say and when; this only says it. A closure, not a class: the minifier
 * shortens its variables, not properties. */
export function Callbacks(h, token) {
  const states = new Set();
  const errors = new Set();
  const handlers = new Map();
  /** Calls an app function, if there is one; what it throws goes to
   * `onError` as `handler_error`, so one bad handler stops nothing else. */
  const call = (f, a, b) => {
    try {
      f?.(a, b);
    } catch (t) {
      report(failure('handler_error', t?.message ?? 'a handler threw', t));
    }
  };
  /** To every `onError` listener, or to `console.error` when there is none. */
  const report = (e) => {
    errors.size || console.error('eventwire:', e);
    for (const f of [...errors]) {
      try {
        f(e);
      } catch (t) {
        console.error('eventwire: onError threw', t);
      }
    }
  };
  const cb = {
    /** The state and transport last reported, for the `EventChannel` getters. */
    now: ['connecting', null],
    /** Reports a state change to a copy of the listeners: one may add or
     * remove listeners while it runs. */
    state(state, info) {
      cb.now = [state, info.transport];
      for (const f of [...states]) call(f, state, info);
    },
    /** Sets the function of handler `id`; none removes it. */
    handler: (id, f) => (f ? handlers.set(id, f) : handlers.delete(id)),
    /** Calls handler `id`, unless it was unsubscribed meanwhile. */
    handle: (id, event) => call(handlers.get(id), event),
    /** Adds an `onState` (or, with `error`, an `onError`) listener; returns
     * the function that removes it. */
    listen(error, f) {
      const listeners = error ? errors : states;
      // Its own entry, though the app may add one function twice.
      const g = (a, b) => f(a, b);
      listeners.add(g);
      return () => listeners.delete(g);
    },
    call,
    report,
    h,
    token,
    /** Resolves (`how` 0) or rejects (1) emit `ref`. */
    settle(ref, how, value) {
      pending.get(ref)?.[how](value);
      pending.delete(ref);
    },
  };
  if (h >= 0) channels[h] = cb;
  return cb;
}

