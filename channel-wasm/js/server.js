// eventwire/server: the Node (>= 20) side of eventwire, in plain
// JavaScript with no wasm and no dependencies. publish() with client-made
// ids and batching, consume() over the consumer-group HTTP API, and
// verifyWebhook() for receivers of signed webhooks (Standard Webhooks).
// Types: server.d.ts.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';

/** Most events in one POST: the gateway's default `--max-batch`. */
const MAX_BATCH = 100;
/** Publish attempts for a batch the gateway could not take (5xx, 429, network). */
const PUBLISH_ATTEMPTS = 4;

function channelError(code, message, status) {
  const e = new Error(message);
  e.code = code;
  if (status !== undefined) e.status = status;
  return e;
}

/** Parses "30s", "500ms", "1m 30s", "1h", as the gateway writes durations. */
export function parseDuration(text) {
  let ms = 0;
  let matched = false;
  const units = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60000, min: 60000, h: 3600000, d: 86400000 };
  for (const [, n, unit] of String(text).matchAll(/(\d+(?:\.\d+)?)\s*(ns|us|ms|min|s|m|h|d)/g)) {
    ms += Number(n) * units[unit];
    matched = true;
  }
  if (!matched) throw channelError('bad_request', `not a duration: ${text}`);
  return ms;
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

export class Eventwire {
  #url;
  #token;
  #fetch;
  #source;
  #maxBatch;
  /** Publishes waiting for the next POST: [{event, resolve, reject}]. */
  #queue = [];
  #sending = false;
  #idle = [];

  constructor(options) {
    if (!options?.url) throw channelError('bad_request', 'Eventwire needs options.url, e.g. http://localhost:8080');
    this.#url = String(options.url).replace(/\/+$/, '');
    this.#token = options.token;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#source = options.source;
    this.#maxBatch = Math.max(1, Math.min(options.maxBatch ?? MAX_BATCH, MAX_BATCH));
  }

  async #headers(json) {
    const h = {};
    if (json) h['content-type'] = 'application/json';
    const t = typeof this.#token === 'function' ? await this.#token() : this.#token;
    if (t) h.authorization = `Bearer ${t}`;
    return h;
  }

  /** One HTTP call to the gateway: the parsed answer, or a thrown error with `code` and `status`. */
  async request(method, path, body, { signal } = {}) {
    let r;
    try {
      r = await this.#fetch(`${this.#url}${path}`, {
        method,
        headers: await this.#headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      throw channelError('network', `${method} ${path}: ${e.cause?.message ?? e.message}`);
    }
    const text = await r.text();
    let json;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!r.ok) {
      const err = json?.error ?? {};
      const e = channelError(err.code ?? 'http_' + r.status, err.message ?? `${method} ${path}: HTTP ${r.status}`, r.status);
      if (json?.accepted) e.accepted = json.accepted;
      throw e;
    }
    return json;
  }

  /**
   * Publishes one event; resolves with its receipt once the gateway has
   * accepted it. Calls made while a POST is in flight go out together in
   * the next one (up to 100 per POST). Every event gets its id here, so a
   * retry after a lost answer is deduplicated by the gateway.
   */
  publish(type, data, options = {}) {
    const event = { type, id: options.id ?? randomUUID() };
    if (data !== undefined) event.data = data;
    const source = options.source ?? this.#source;
    if (source !== undefined) event.source = source;
    for (const k of ['subject', 'correlationid', 'time', 'datacontenttype']) {
      if (options[k] !== undefined) event[k] = options[k];
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ event, resolve, reject });
      if (!this.#sending) this.#drain();
    });
  }

  async #drain() {
    this.#sending = true;
    try {
      while (this.#queue.length) {
        const batch = this.#queue.splice(0, this.#maxBatch);
        await this.#send(batch);
      }
    } finally {
      this.#sending = false;
      for (const f of this.#idle.splice(0)) f();
    }
  }

  async #send(batch, attempt = 1) {
    try {
      const body = batch.length === 1 ? batch[0].event : batch.map((p) => p.event);
      const answer = await this.request('POST', '/v1/events', body);
      const receipts = Array.isArray(answer) ? answer : [answer];
      batch.forEach((p, i) => p.resolve(receipts[i]));
    } catch (e) {
      // Accepted before a partial failure: those are done.
      const accepted = e.accepted ?? [];
      accepted.forEach((r, i) => batch[i].resolve(r));
      const rest = batch.slice(accepted.length);
      const retriable = e.code === 'network' || e.status === 429 || e.status >= 500;
      if (retriable && attempt < PUBLISH_ATTEMPTS) {
        await sleep(100 * 2 ** attempt * (0.5 + Math.random() / 2));
        return this.#send(rest, attempt + 1);
      }
      if (!retriable && rest.length > 1) {
        // One bad event refuses the whole batch: send each alone, so only
        // the bad one fails.
        for (const p of rest) await this.#send([p], attempt);
        return;
      }
      for (const p of rest) p.reject(e);
    }
  }

  /** Resolves once every publish made so far is answered. */
  flush() {
    if (!this.#sending && !this.#queue.length) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /**
   * Works in a consumer group: fetches deliveries, runs `handler` on each
   * (at most `concurrency` at once), acks when it resolves, nacks when it
   * throws, and extends the delivery while a handler runs longer than half
   * the group's `ack_wait`. `options.create` makes the group first (PUT).
   * Returns a Consumer; `await consumer.stop()` finishes in-flight work,
   * settles it, and returns.
   */
  consume(group, handler, options = {}) {
    return new Consumer(this, group, handler, options);
  }

  /** Flushes pending publishes. */
  async close() {
    await this.flush();
  }
}

export class Consumer {
  #ew;
  #group;
  #handler;
  #concurrency;
  #wait;
  #stopping = false;
  #poll = new AbortController();
  #inflight = new Set();
  #slotFree = null;
  #extendMs;
  #onError;
  /** Resolves when the consumer has stopped (after stop(), or on a fatal error). */
  done;

  constructor(ew, group, handler, options) {
    this.#ew = ew;
    this.#group = encodeURIComponent(group);
    this.#handler = handler;
    this.#concurrency = Math.max(1, options.concurrency ?? 1);
    this.#wait = options.wait ?? '20s';
    this.#extendMs = options.extendEvery;
    this.#onError = options.onError ?? ((e) => console.error(`eventwire consume ${group}:`, e));
    this.done = this.#run(options.create);
    // A stopped consumer's failure surfaces through `done` and `onError`.
    this.done.catch(() => {});
  }

  get #path() {
    return `/v1/groups/${this.#group}`;
  }

  async #run(create) {
    if (create) await this.#ew.request('PUT', this.#path, create);
    if (this.#extendMs === undefined) {
      const info = await this.#ew.request('GET', this.#path);
      this.#extendMs = parseDuration(info.config.ack_wait) / 2;
    }
    let failures = 0;
    while (!this.#stopping) {
      while (this.#inflight.size >= this.#concurrency) {
        await new Promise((r) => (this.#slotFree = r));
      }
      if (this.#stopping) break;
      let answer;
      try {
        answer = await this.#ew.request(
          'POST',
          `${this.#path}/fetch`,
          // The gateway hands out at most 1000 per fetch.
          { max: Math.min(1000, this.#concurrency - this.#inflight.size), wait: this.#wait },
          { signal: this.#poll.signal },
        );
        failures = 0;
      } catch (e) {
        if (this.#stopping) break;
        if (e.code === 'group_not_found' || e.status === 401 || e.status === 403) {
          this.#onError(e);
          throw e;
        }
        this.#onError(e);
        await sleep(Math.min(30000, 250 * 2 ** failures++));
        continue;
      }
      for (const d of answer.deliveries) this.#start(d);
    }
    await Promise.allSettled([...this.#inflight]);
  }

  #start(d) {
    const job = this.#work(d).finally(() => {
      this.#inflight.delete(job);
      const free = this.#slotFree;
      this.#slotFree = null;
      free?.();
    });
    this.#inflight.add(job);
  }

  async #work(d) {
    const extender = setInterval(() => {
      this.#settle('extend', d.handle).catch((e) => this.#onError(e));
    }, this.#extendMs);
    let failed;
    try {
      await this.#handler(d.event, { attempt: d.attempt, handle: d.handle });
    } catch (e) {
      failed = e;
    } finally {
      clearInterval(extender);
    }
    try {
      if (failed === undefined) {
        await this.#settle('ack', d.handle);
      } else {
        const reason = String(failed?.message ?? failed).slice(0, 500);
        await this.#settle('nack', d.handle, { reason });
      }
    } catch (e) {
      this.#onError(e);
    }
  }

  async #settle(op, handle, extra = {}) {
    const r = await this.#ew.request('POST', `${this.#path}/${op}`, { handles: [handle], ...extra });
    return r.results[0].result;
  }

  /**
   * Stops fetching, waits for the handlers running now, settles them, and
   * resolves. The long poll in flight is cut short; deliveries the gateway
   * handed to it at that very moment go out again after `ack_wait`.
   */
  async stop() {
    this.#stopping = true;
    this.#poll.abort();
    const free = this.#slotFree;
    this.#slotFree = null;
    free?.();
    try {
      await this.done;
    } catch {
      // Reported through onError already.
    }
  }
}

function header(headers, name) {
  if (typeof headers?.get === 'function') return headers.get(name) ?? undefined;
  const v = headers?.[name] ?? headers?.[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Checks a webhook request signed per Standard Webhooks (what the gateway
 * sends, PROTOCOL §17.3): `body` exactly as received (string, Buffer or
 * Uint8Array), the request's headers (a Headers object or Node's
 * `req.headers`), the `whsec_…` secret. Returns the parsed event; throws
 * an Error with `code` `invalid_signature` (missing headers, bad secret,
 * no matching signature) or `timestamp_out_of_range` (older or newer than
 * `toleranceSec`, default 300).
 */
export function verifyWebhook(body, headers, secret, { toleranceSec = 300, now = Date.now() } = {}) {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) {
    throw channelError('invalid_signature', 'missing webhook-id, webhook-timestamp or webhook-signature');
  }
  const ts = Number(timestamp);
  if (!Number.isInteger(ts) || Math.abs(now / 1000 - ts) > toleranceSec) {
    throw channelError('timestamp_out_of_range', `webhook-timestamp ${timestamp} is not within ${toleranceSec}s of now`);
  }
  if (typeof secret !== 'string' || !secret.startsWith('whsec_')) {
    throw channelError('invalid_signature', 'the secret must be whsec_ followed by base64');
  }
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(raw).digest();
  const match = signatures.split(' ').some((s) => {
    const [version, sig] = s.split(',', 2);
    if (version !== 'v1' || !sig) return false;
    const given = Buffer.from(sig, 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!match) throw channelError('invalid_signature', 'no webhook-signature matches the body');
  return JSON.parse(raw.toString('utf8'));
}
