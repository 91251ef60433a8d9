// eventwire: the typed EventChannel for browsers. The logic is Rust compiled
// to WebAssembly (eventwire_channel_bg.wasm); this file loads it on first use
// and gives it the shape index.d.ts describes.
import init, { Channel } from './eventwire_channel.js';

let loading;

/** Loads the wasm module once. `connect` calls it; users never need to. */
function load() {
  loading ??= init({ module_or_path: new URL('./eventwire_channel_bg.wasm', import.meta.url) });
  return loading;
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
    await load();
    const raw = new Channel(options);
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
