// Types for eventwire/server (Node >= 20). The event map is the same one
// the browser EventChannel takes, so both sides agree on every payload.
// Self-contained like index.d.ts: no @types/node or DOM lib needed.
import type { EventMap, EventEnvelope, EventFor, EmitReceipt, ChannelError } from './index.js';

export type { EventMap, EventEnvelope, EventFor, EmitReceipt, ChannelError };

/** Any event of the map: the union of each type with its own `data`. */
export type AnyEvent<E extends EventMap> = [keyof E & string] extends [never]
  ? EventEnvelope<string, unknown>
  : { [K in keyof E & string]: EventEnvelope<K, E[K]> }[keyof E & string];

export interface EventwireOptions {
  /** The gateway's base URL, e.g. `http://localhost:8080`. */
  url: string;
  /** An API key or token, or a function returning one (called per request). */
  token?: string | (() => string | Promise<string>);
  /** The `source` of published events when a publish does not name one. */
  source?: string;
  /** Most events per POST (1 to 100, default 100: the gateway's default `--max-batch`). */
  maxBatch?: number;
  /** A fetch implementation (default: the global one), e.g. one with a proxy agent. */
  fetch?(url: string, init: FetchInit): Promise<FetchAnswer>;
}

/** What eventwire/server passes to `fetch` and reads back: a subset of the WHATWG fetch API. */
export interface FetchInit {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal?: unknown;
}

export interface FetchAnswer {
  ok: boolean;
  status: number;
  text(): Promise<string>;
}

/** A `Headers` object, or anything with the same `get`. */
export interface HeaderLookup {
  get(name: string): string | null;
}

export interface PublishOptions {
  /** The event id; a random UUID when absent. Reusing one makes a retry idempotent. */
  id?: string;
  source?: string;
  subject?: string;
  /** Ties a reaction to its cause; carried through unchanged. */
  correlationid?: string;
  time?: string;
  datacontenttype?: string;
}

/** The group's configuration (PROTOCOL §15.2), for `consume(…, { create })`. */
export interface GroupSpec<P extends string = string> {
  topics: P[];
  ack_wait?: string;
  max_deliver?: number;
  start?: string;
  max_inflight?: number;
  backoff?: string[];
}

export interface Delivery {
  /** 1 on the first delivery, 2 on the first redelivery, … */
  attempt: number;
  handle: string;
}

export interface ConsumeOptions<P extends string = string> {
  /** Handlers running at once (default 1). */
  concurrency?: number;
  /** Create the group first (PUT), with this configuration. */
  create?: GroupSpec<P>;
  /** Long-poll wait per fetch (default "20s"). */
  wait?: string;
  /** Extend a running delivery this often (ms; default half the group's ack_wait). */
  extendEvery?: number;
  /** Errors that do not stop the consumer (a failed fetch or ack). Default: console.error. */
  onError?: (error: ChannelError) => void;
}

export declare class Consumer {
  private constructor();
  /**
   * Stops fetching, lets the running handlers finish, settles them, resolves.
   * Deliveries handed to the long poll it cuts short, at that very moment, go
   * out again after the group's `ack_wait`.
   */
  stop(): Promise<void>;
  /** Settles once the consumer has stopped; rejects on a fatal error (group deleted, no rights). */
  readonly done: Promise<void>;
}

export declare class Eventwire<E extends EventMap = EventMap> {
  constructor(options: EventwireOptions);
  /** Resolves once the gateway has accepted the event; rejects with a `ChannelError`. */
  publish<K extends keyof E & string>(type: K, data: E[K], options?: PublishOptions): Promise<EmitReceipt>;
  /** Resolves once every publish made so far is answered. */
  flush(): Promise<void>;
  /**
   * Works in consumer group `group`: acks when `handler` resolves, nacks
   * when it throws. `P` (the group's patterns, inferred from `create.topics`)
   * types the events.
   */
  consume<P extends string = '>'>(
    group: string,
    handler: (event: EventFor<E, P>, delivery: Delivery) => unknown,
    options?: ConsumeOptions<P>,
  ): Consumer;
  /** Flushes pending publishes. */
  close(): Promise<void>;
}

export interface VerifyOptions {
  /** Largest accepted distance of `webhook-timestamp` from now, in seconds (default 300). */
  toleranceSec?: number;
  /** Now, in ms since the epoch (default Date.now()). */
  now?: number;
}

/**
 * Checks a webhook request signed per Standard Webhooks and returns its
 * event; throws a `ChannelError` with code `invalid_signature` or
 * `timestamp_out_of_range`. Pass the body exactly as received.
 */
export declare function verifyWebhook<E extends EventMap = EventMap>(
  body: string | Uint8Array,
  headers: HeaderLookup | Record<string, string | string[] | undefined>,
  secret: string,
  options?: VerifyOptions,
): AnyEvent<E>;

/** Parses a duration as the gateway writes it ("30s", "1m 30s", "500ms") into ms. */
export declare function parseDuration(text: string): number;
