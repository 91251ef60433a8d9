// eventwire: the typed EventChannel for browsers. The logic is Rust compiled
// to WebAssembly (eventwire_channel_bg.wasm); this file loads it on first use
// and gives it the shape index.d.ts describes.
import { Callbacks, bind, failure, imports, json, opened, pending, put, uuid } from './io.js';

let loading;

/** Loads the wasm module once. `connect` calls it; users never need to.
 * Under Node the module sits beside this file as a file: URL, which Node's
 * fetch cannot read: the bytes come from disk instead. getBuiltinModule
 * (Node 20.16+) keeps bundlers from seeing a Node import in browser builds.
 * The module imports the glue's functions (io.js) and nothing else. */
const load = () =>
  (loading ??= (async () => {
    const url = new URL('./eventwire_channel_bg.wasm', import.meta.url);
    const fs = url.protocol == 'file:' && globalThis.process?.getBuiltinModule?.('fs');
    let bytes;
    if (fs) bytes = fs.readFileSync(url);
    else {
      const r = await fetch(url);
      if (!r.ok) throw Error(`eventwire: fetching ${url} failed: ${r.status}`);
      bytes = await r.arrayBuffer();
    }
    w = bind((await WebAssembly.instantiate(bytes, { e: imports })).instance.exports);
  })());

/** The `op`s of the wasm's `c` export (exports.rs, `mod op`). */
const START = 0,
  SUBSCRIBE = 1,
  UNSUBSCRIBE = 2,
  CLOSE = 3,
  LAST_SEQ = 4,
  EMIT = 5;

const badRequest = (message) => failure('bad_request', message);

/** The wasm's `c`: `op` on channel `h`, with a number and strings. */
const call = (h, op, a, strings = []) => (put(strings), w.c(h, op, a));
let w;
/** The last emit reference handed out (unique across channels). */
let refs = 0;

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

  constructor(side) {
    this.#side = side;
  }

  /** Connects, and resolves once the gateway has welcomed the channel. */
  static async connect(options) {
    // The share/persist layer is a file of its own, fetched only by the apps
    // that use it, and given io.js's parts as arguments (it imports
    // nothing). Its URL is made like the wasm's: a bundler copies the file
    // (Vite) or makes it a chunk (webpack 5). Vite would wrap a plain
    // import('./share.js') in its preload helper, ~650 B gzip in every
    // app's entry chunk (vitejs/vite#13952). Vite inlines an asset under
    // 4,096 B (`build.assetsInlineLimit`) as a data: URL into the importing
    // chunk: should share.js get that small, name it './share.js?no-inline'
    // (tried with Vite 8), or every Vite app downloads it again;
    // scripts/client-size then fails ("no share/persist chunk").
    if (options.share || options.persist)
      return (await import(new URL('./share.js', import.meta.url))).layer(
        options,
        EventChannel,
        Callbacks,
        failure,
        uuid,
        opened,
        json,
      );
    // The options, read and checked. Patterns, in `topics` as everywhere,
    // are checked by the Rust side, which shares the gateway's grammar.
    const { url, topics = [], token } = options;
    if (!/^https?:\/\//.test(url)) throw badRequest("`url` must be the gateway's http:// or https:// URL");
    if (!Array.isArray(topics)) throw badRequest('`topics` must be an array of patterns');
    // The `transport` option, as the number `Channel` takes. Node 22+ has
    // WebSocket but no EventSource, so `auto` means WebSocket there; a
    // runtime without what the transport needs (Node 20 has no WebSocket)
    // is refused with a code.
    let kind = ['auto', 'websocket', 'sse'].indexOf(options.transport ?? 'auto');
    if (kind < 0) throw badRequest("`transport` must be 'auto', 'websocket' or 'sse'");
    if (!kind && !globalThis.EventSource) kind = 1;
    const need = [, 'WebSocket', 'EventSource'][kind];
    if (need && !globalThis[need]) throw failure('unsupported_runtime', `no ${need} in this runtime (Node needs 22+)`);
    await load();
    // NaN stands for "not given": the Rust side takes its default.
    const numbers = [options.minBackoffMs, options.maxBackoffMs, options.outboxSize, options.attemptTimeoutMs];
    const fn = typeof token == 'function';
    put([url.replace(/\/+$/, ''), uuid(), token, options.since]);
    const h = w.o(kind, ...numbers.map((n) => n ?? NaN), fn);
    const side = Callbacks(h, token);
    try {
      for (const t of topics) subscribe(side, t);
    } catch (e) {
      call(h, CLOSE);
      throw e;
    }
    const ready = opened(side, options, () => call(side.h, CLOSE));
    call(side.h, START);
    await ready;
    return new EventChannel(side);
  }

  subscribe(pattern, handler) {
    const side = this.#side;
    let id = subscribe(side, pattern, handler);
    return () => {
      if (id) {
        side.handler(id);
        call(side.h, UNSUBSCRIBE, id);
        id = 0;
      }
    };
  }

  /** The envelope is built on the Rust side from the type, the id (made
   * here when `options` has none), the options `correlationid`, `subject`
   * and `source` in that order (outgoing.rs, `ENVELOPE_OPTIONS`), and the
   * data as JSON. */
  emit(type, data, options) {
    const side = this.#side;
    // What the executor throws rejects the promise.
    return new Promise((resolve, reject) => {
      // The wasm let a closed channel go.
      if (side.closed) throw failure('closed', 'the channel is closed');
      const d = json(data);
      let { id, correlationid, subject, source } = options ?? {};
      if (typeof id != 'string') id = uuid();
      const ref = ++refs;
      pending.set(ref, [resolve, reject]);
      call(side.h, EMIT, ref, [type, id, correlationid, subject, source, d]);
    });
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
    const side = this.#side;
    if (!side.closed) {
      side.answer = null;
      call(side.h, LAST_SEQ);
    }
    return side.answer;
  }

  onState(listener) {
    return this.#side.listen(0, listener);
  }

  onError(listener) {
    return this.#side.listen(1, listener);
  }

  async close() {
    const side = this.#side;
    if (!side.closed) {
      this.lastSeq;
      call(side.h, CLOSE);
      side.closed = 1;
    }
  }
}
