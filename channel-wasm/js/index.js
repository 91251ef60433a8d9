// eventwire: the typed EventChannel for browsers. The logic is Rust compiled
// to WebAssembly (eventwire_channel_bg.wasm); this file loads it on first use
// and gives it the shape index.d.ts describes.
import { initSync, open as openChannel, call, io } from './eventwire_channel.js';
// The same module the glue imports: scripts/build-client points this at
// the glue's copy, so the bundle holds io.js once.
import { Callbacks, failure } from './io.js';
import { layer } from './share.js';

let loading;

/** Loads the wasm module once. `connect` calls it; users never need to.
 * Under Node the module sits beside this file as a file: URL, which Node's
 * fetch cannot read: the bytes come from disk instead. getBuiltinModule
 * (Node 20.16+) keeps bundlers from seeing a Node import in browser builds.
 * The module is compiled here and instantiated with the glue's `initSync`,
 * so the glue's own loader (streaming with a MIME-type fallback, about
 * 1 KB for a module this small) stays out of the bundle. */
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
    loading = bytes.then((b) => WebAssembly.compile(b)).then((module) => initSync({ module }));
  }
  return loading;
}

const has = (name) => typeof globalThis[name] == 'function';

/** The `transport` option, as the number `Channel` takes. */
const KINDS = ['auto', 'websocket', 'sse'];

/** The `op`s of the wasm's `call` (exports.rs, `mod op`). */
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

/** Reads and checks the `connect` options into a channel (not started);
 * answers its handle. Patterns, in `topics` as everywhere, are checked by
 * the Rust side, which shares the gateway's grammar. */
function open(options, callbacks) {
  const { url, topics = [] } = options;
  if (typeof url != 'string') throw badRequest("`url` (the gateway's base URL) is required");
  if (!/^https?:\/\//.test(url)) throw badRequest('`url` must start with http:// or https://');
  if (!Array.isArray(topics)) throw badRequest('`topics` must be an array of patterns');
  const kind = KINDS.indexOf(transportFor(options.transport));
  if (kind < 0) throw badRequest("`transport` must be 'auto', 'websocket' or 'sse'");
  // NaN stands for "not given": the Rust side takes its default.
  const numbers = [options.minBackoffMs, options.maxBackoffMs, options.outboxSize, options.attemptTimeoutMs];
  // Every browser signal goes back to the wasm with this channel's handle.
  const signal = (tag, n, data, status) => io(h, tag, n, data, status);
  const h = openChannel(url.replace(/\/+$/, ''), kind, ...numbers.map((n) => n ?? NaN), options.token, callbacks, signal);
  try {
    for (const t of topics) call(h, SUBSCRIBE, t);
  } catch (e) {
    call(h, CLOSE);
    throw e;
  }
  return h;
}

/** Until `close`, the channel lives on in the wasm like the socket it
 * holds, whether or not the app keeps this object. */
export class EventChannel {
  #h;
  #callbacks;
  #closed = false;

  constructor(h, callbacks) {
    this.#h = h;
    this.#callbacks = callbacks;
  }

  #call(op, a, b, c) {
    return call(this.#h, op, a, b, c);
  }

  /** Connects, and resolves once the gateway has welcomed the channel. */
  static async connect(options) {
    if (options.share || options.persist) return layer(options, EventChannel.connect);
    await load();
    const callbacks = new Callbacks();
    const h = open(options, callbacks);
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    await new Promise((resolve, reject) => {
      let timer;
      const done = () => {
        clearTimeout(timer);
        off();
      };
      const off = callbacks.listen(false, (state) => {
        if (state === 'open') {
          done();
          resolve();
        } else if (state === 'closed') {
          done();
          reject(failure('closed', 'the channel was closed before it connected'));
        }
      });
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          done();
          call(h, CLOSE);
          reject(failure('connect_timeout', `no connection to ${options.url} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      call(h, START);
    });
    return new EventChannel(h, callbacks);
  }

  subscribe(pattern, handler) {
    const id = this.#call(SUBSCRIBE, pattern, handler);
    let on = true;
    return () => {
      if (on) {
        on = false;
        this.#call(UNSUBSCRIBE, id);
      }
    };
  }

  emit(type, data, options) {
    return this.#call(EMIT, type, data, options);
  }

  // As last reported to `onState` listeners (`Callbacks.now`).
  get state() {
    return this.#callbacks.now[0];
  }

  get transport() {
    return this.#callbacks.now[1];
  }

  /** The position of the last event delivered (opaque). After `close` the
   * wasm has let the channel go: the position it had then. */
  get lastSeq() {
    return this.#closed ? this.#closed[0] : this.#call(LAST_SEQ);
  }

  onState(listener) {
    return this.#callbacks.listen(false, listener);
  }

  onError(listener) {
    return this.#callbacks.listen(true, listener);
  }

  async close() {
    if (!this.#closed) {
      const last = [this.lastSeq];
      this.#call(CLOSE);
      this.#closed = last;
    }
  }
}
