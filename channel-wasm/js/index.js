// eventwire: the typed EventChannel for browsers. The logic is Rust compiled
// to WebAssembly (eventwire_channel_bg.wasm); this file loads it on first use
// and gives it the shape index.d.ts describes.
import { Callbacks, Side, bind, failure, imports, opened, put, uuid } from './io.js';

let loading;

/** Loads the wasm module once. `connect` calls it; users never need to.
 * Under Node the module sits beside this file as a file: URL, which Node's
 * fetch cannot read: the bytes come from disk instead. getBuiltinModule
 * (Node 20.16+) keeps bundlers from seeing a Node import in browser builds.
 * The module imports the glue's functions (io.js) and nothing else. */
function load() {
  if (!loading) {
    const url = new URL('./eventwire_channel_bg.wasm', import.meta.url);
    const fs = url.protocol === 'file:' && globalThis.process?.getBuiltinModule?.('fs');
    const bytes = fs
      ? Promise.resolve(fs.readFileSync(url))
      : fetch(url).then((r) => {
          if (!r.ok) throw Error(`eventwire: fetching ${url} failed: ${r.status}`);
          return r.arrayBuffer();
        });
    loading = bytes.then((b) => WebAssembly.instantiate(b, { e: imports })).then((r) => (w = bind(r.instance.exports)));
  }
  return loading;
}

const has = (name) => typeof globalThis[name] == 'function';

/** The `transport` option, as the number `Channel` takes. */
const KINDS = ['auto', 'websocket', 'sse'];

/** The `op`s of the wasm's `c` export (exports.rs, `mod op`). */
const START = 0,
  SUBSCRIBE = 1,
  UNSUBSCRIBE = 2,
  CLOSE = 3,
  LAST_SEQ = 4,
  EMIT = 5;

/** The transport to ask for. Node 22+ has WebSocket but no EventSource,
 * so `auto` means WebSocket there; a runtime without what the transport
 * needs (Node 20 has no WebSocket) is refused with a code. */
function transportFor(t = 'auto') {
  if (t == 'auto' && !has('EventSource')) t = 'websocket';
  const need = t == 'sse' ? 'EventSource' : t == 'websocket' ? 'WebSocket' : 0;
  if (need && !has(need)) throw failure('unsupported_runtime', `no ${need} in this runtime (Node needs 22+)`);
  return t;
}

const badRequest = (message) => failure('bad_request', message);

/** The wasm's `c`: `op` on channel `h`, with a number and strings. */
const call = (h, op, a, strings = []) => w.c(h, op, a, ...put(strings));
let w;

/** Reads and checks the `connect` options into a channel (not started);
 * answers its JS side. Patterns, in `topics` as everywhere, are checked by
 * the Rust side, which shares the gateway's grammar. */
function open(options) {
  const { url, topics = [], token } = options;
  if (typeof url != 'string') throw badRequest("`url` (the gateway's base URL) is required");
  if (!/^https?:\/\//.test(url)) throw badRequest('`url` must start with http:// or https://');
  if (!Array.isArray(topics)) throw badRequest('`topics` must be an array of patterns');
  const kind = KINDS.indexOf(transportFor(options.transport));
  if (kind < 0) throw badRequest("`transport` must be 'auto', 'websocket' or 'sse'");
  // NaN stands for "not given": the Rust side takes its default.
  const numbers = [options.minBackoffMs, options.maxBackoffMs, options.outboxSize, options.attemptTimeoutMs];
  const fn = typeof token == 'function';
  const h = w.o(kind, ...numbers.map((n) => n ?? NaN), fn, ...put([url.replace(/\/+$/, ''), uuid(), token, options.since]));
  const side = new Side(h, token);
  try {
    for (const t of topics) subscribe(side, t);
  } catch (e) {
    call(h, CLOSE);
    throw e;
  }
  return side;
}

/** Adds `pattern`, with `handler` if it is a function; answers the id. */
function subscribe(side, pattern, handler) {
  const f = typeof handler == 'function';
  const id = call(side.h, SUBSCRIBE, f, [pattern]);
  if (!id) throw side.thrown;
  if (f) side.handler(id, handler);
  return id;
}

/** Until `close`, the channel lives on in the wasm like the socket it
 * holds, whether or not the app keeps this object. */
export class EventChannel {
  #side;
  #closed = false;

  constructor(side) {
    this.#side = side;
  }

  #call(op, a, strings) {
    return call(this.#side.h, op, a, strings);
  }

  /** Connects, and resolves once the gateway has welcomed the channel. */
  static async connect(options) {
    // The share/persist layer is a chunk of its own, fetched only by the
    // apps that use it. It gets io.js's parts as arguments: were share.js
    // to import io.js, io.js would become a third chunk.
    if (options.share || options.persist)
      return (await import('./share.js')).layer(options, EventChannel.connect, Callbacks, failure, uuid, opened);
    await load();
    const side = open(options);
    const ready = opened(side, options, () => call(side.h, CLOSE));
    call(side.h, START);
    await ready;
    return new EventChannel(side);
  }

  subscribe(pattern, handler) {
    const id = subscribe(this.#side, pattern, handler);
    let on = true;
    return () => {
      if (on) {
        on = false;
        this.#side.handler(id);
        this.#call(UNSUBSCRIBE, id);
      }
    };
  }

  /** The envelope is built on the Rust side from the type, the id (made
   * here when `options` has none), the options `correlationid`, `subject`
   * and `source` in that order (outgoing.rs, `ENVELOPE_OPTIONS`), and the
   * data as JSON. */
  emit(type, data, options) {
    const [ref, promise] = this.#side.emit();
    let json;
    try {
      // The wasm let a closed channel go.
      if (this.#closed) throw failure('closed', 'the channel is closed');
      json = JSON.stringify(data);
    } catch (e) {
      // A cycle, a BigInt.
      this.#side.settle(ref, 1, e.code ? e : failure('invalid_event', e?.message ?? String(e)));
      return promise;
    }
    let id = options?.id;
    if (typeof id != 'string') id = uuid();
    this.#call(EMIT, ref, [type, id, options?.correlationid, options?.subject, options?.source, json]);
    return promise;
  }

  // As last reported to `onState` listeners.
  get state() {
    return this.#side.now[0];
  }

  get transport() {
    return this.#side.now[1];
  }

  /** The position of the last event delivered (opaque). After `close` the
   * wasm has let the channel go: the position it had then. */
  get lastSeq() {
    if (this.#closed) return this.#closed[0];
    this.#side.answer = null;
    this.#call(LAST_SEQ);
    return this.#side.answer;
  }

  onState(listener) {
    return this.#side.listen(false, listener);
  }

  onError(listener) {
    return this.#side.listen(true, listener);
  }

  async close() {
    if (!this.#closed) {
      const last = [this.lastSeq];
      this.#call(CLOSE);
      this.#closed = last;
    }
  }
}
