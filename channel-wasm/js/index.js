// eventwire: the typed EventChannel for browsers. The logic is Rust compiled
// to WebAssembly (eventwire_channel_bg.wasm); this file loads it on first use
// and gives it the shape index.d.ts describes.
import { initSync, Channel } from './eventwire_channel.js';

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

/** The transport to ask for. Node 22+ has WebSocket but no EventSource,
 * so `auto` means WebSocket there; a runtime without what the transport
 * needs (Node 20 has no WebSocket) is refused with a code. */
function transportFor(t = 'auto') {
  if (t == 'auto' && !has('EventSource')) t = 'websocket';
  const need = t == 'sse' ? 'EventSource' : t == 'websocket' ? 'WebSocket' : 0;
  if (need && !has(need)) throw failure('unsupported_runtime', `no ${need} in this runtime (Node needs 22+)`);
  return t;
}

function failure(code, message) {
  const e = new Error(message);
  e.code = code;
  return e;
}

export class EventChannel {
  #raw;

  constructor(raw) {
    this.#raw = raw;
  }

  /** Connects, and resolves once the gateway has welcomed the channel. */
  static async connect(options) {
    const transport = transportFor(options.transport);
    await load();
    const raw = new Channel({ ...options, transport });
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    await new Promise((resolve, reject) => {
      let timer;
      const done = () => {
        clearTimeout(timer);
        raw.off(id);
      };
      const id = raw.onState((state) => {
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
          raw.close();
          reject(failure('connect_timeout', `no connection to ${options.url} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      raw.start();
    });
    return new EventChannel(raw);
  }

  subscribe(pattern, handler) {
    const id = this.#raw.subscribe(pattern, handler);
    let on = true;
    return () => {
      if (on) {
        on = false;
        this.#raw.unsubscribe(id);
      }
    };
  }

  emit(type, data, options) {
    return this.#raw.emit(type, data, options ?? {});
  }

  get state() {
    return this.#raw.state;
  }

  get transport() {
    return this.#raw.transport;
  }

  /** The position of the last event delivered (opaque). */
  get lastSeq() {
    return this.#raw.lastSeq ?? null;
  }

  onState(listener) {
    const id = this.#raw.onState(listener);
    return () => this.#raw.off(id);
  }

  onError(listener) {
    const id = this.#raw.onError(listener);
    return () => this.#raw.off(id);
  }

  async close() {
    this.#raw.close();
  }

  /** Testing aid: handle `text` as if the gateway had sent it. */
  _injectFrame(text) {
    this.#raw.injectFrame(text);
  }
}
