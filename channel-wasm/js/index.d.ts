// Types for eventwire. Self-contained on purpose: consumers need neither
// `skipLibCheck` nor any extra `lib` entry.

/** Maps each event type (topic) to the type of its `data`. */
export type EventMap = { [type: string]: unknown };

export type Transport = 'websocket' | 'sse';
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** An event as delivered: a CloudEvents-style envelope. */
export interface EventEnvelope<T extends string = string, D = unknown> {
  specversion: string;
  id: string;
  type: T;
  source: string;
  time: string;
  /** Stream position, assigned by the gateway. Opaque. */
  seq: string;
  data: D;
  datacontenttype?: string;
  subject?: string;
  correlationid?: string;
}

type Segments<S extends string> = S extends `${infer Head}.${infer Rest}` ? [Head, ...Segments<Rest>] : [S];

type SegmentsMatch<P extends string[], T extends string[]> = P extends ['>']
  ? T extends [string, ...string[]]
    ? true
    : false
  : P extends [infer PH extends string, ...infer PT extends string[]]
    ? T extends [infer TH extends string, ...infer TT extends string[]]
      ? PH extends '*'
        ? SegmentsMatch<PT, TT>
        : PH extends TH
          ? SegmentsMatch<PT, TT>
          : false
      : false
    : T extends []
      ? true
      : false;

/** The event types of `E` that pattern `P` matches (`*` one segment, `>` the rest). */
export type MatchingTypes<E extends EventMap, P extends string> = {
  [K in keyof E & string]: SegmentsMatch<Segments<P>, Segments<K>> extends true ? K : never;
}[keyof E & string];

/** What a handler for pattern `P` receives: the union of the matching types, or unknown data. */
export type EventFor<E extends EventMap, P extends string> = [MatchingTypes<E, P>] extends [never]
  ? EventEnvelope<string, unknown>
  : { [K in MatchingTypes<E, P>]: EventEnvelope<K, E[K]> }[MatchingTypes<E, P>];

/** A pattern to subscribe to: a known type, or any pattern with a wildcard. */
export type PatternOf<E extends EventMap> = (keyof E & string) | `${string}*${string}` | `${string}>`;

export interface ConnectOptions {
  /** The gateway's base URL, e.g. `http://localhost:8080`. */
  url: string;
  /** `auto` (default) tries WebSocket and falls back to SSE for good if it cannot connect. */
  transport?: 'auto' | Transport;
  /** Patterns to subscribe to from the start, before any handler exists. */
  topics?: string[];
  /** A position (a `lastSeq` kept from earlier) to resume after: the first connection delivers what
   * came after it, as a reconnect would; where the gateway cannot honour it, `onState` says
   * `recovered: false`. */
  since?: string;
  /** A token, or a function returning one (or a promise of one), called on every connect. */
  token?: string | (() => string | Promise<string>);
  /** How long `connect()` waits for the first connection (ms, default 10000; 0, or 2^31 ms and more, waits forever). */
  connectTimeoutMs?: number;
  /** How long one connection attempt may take to be welcomed (ms, default 10000). */
  attemptTimeoutMs?: number;
  /** Reconnect backoff bounds (ms, defaults 500 and 20000). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Emits kept while disconnected (default 1000); with `share` or `persist`, emits not yet answered. */
  outboxSize?: number;
  /** One connection for all tabs of this origin with the same `url` and token identity: a leader tab
   * holds it, the others talk to it (Web Locks + BroadcastChannel). Off by default; where either API
   * is missing, each tab keeps its own connection. */
  share?: boolean;
  /** Emits not yet accepted are kept in IndexedDB and sent again, with their ids, after a reload or by
   * another tab. Without IndexedDB (or over quota), or without SHA-256 (not a secure context) for an
   * opaque token, they are kept in memory; `onError` is told once (`persist_unavailable`). */
  persist?: boolean;
  /** With `persist`: how each emit restored from an earlier page ended (its promise is gone). */
  onRestoredEmit?: (outcome: RestoredEmit) => void;
}

/** An emit restored by `persist`: the receipt when the gateway accepted it, else the error. */
export interface RestoredEmit {
  id: string;
  type: string;
  data: unknown;
  receipt?: EmitReceipt;
  error?: ChannelError;
}

export interface EmitOptions {
  /** Ties a reaction to its cause; carried through unchanged. */
  correlationid?: string;
  subject?: string;
  /** The event id; made on the client when absent. Reusing one makes a retry idempotent. */
  id?: string;
}

export interface EmitReceipt {
  id: string;
  seq: string;
  /** True when the gateway had already accepted an event with this id. */
  duplicate: boolean;
}

export interface StateInfo {
  transport: Transport | null;
  /** On `open`: false when events may have been missed while disconnected. */
  recovered?: boolean;
  /** Reconnect attempts since the last successful connection. */
  attempt: number;
  /** On `reconnecting`: the delay before the next attempt. */
  delayMs?: number;
}

/** Every rejection and every `onError` value: an `Error` with a stable `code`. */
export interface ChannelError extends Error {
  code: string;
}

export declare class EventChannel<E extends EventMap = EventMap> {
  private constructor();
  static connect<E extends EventMap = EventMap>(options: ConnectOptions): Promise<EventChannel<E>>;
  /** Calls `handler` for each event matching `pattern`; returns the function that stops it. */
  subscribe<P extends PatternOf<E>>(pattern: P, handler: (event: EventFor<E, P>) => void): () => void;
  /** Resolves once the gateway has accepted the event; rejects with a `ChannelError`. */
  emit<K extends keyof E & string>(type: K, data: E[K], options?: EmitOptions): Promise<EmitReceipt>;
  readonly state: ConnectionState;
  readonly transport: Transport | null;
  readonly lastSeq: string | null;
  /** With `share`: whether this tab holds the connection (`'leader'`) or uses another tab's
   * (`'follower'`); false or absent when it has a connection of its own. */
  readonly shared?: 'leader' | 'follower' | false;
  onState(listener: (state: ConnectionState, info: StateInfo) => void): () => void;
  /** Errors not tied to one emit: malformed frames, handler exceptions, refused subscriptions. Defaults to `console.error`. */
  onError(listener: (error: ChannelError) => void): () => void;
  /** Closes the channel; until then it lives on, like the socket it holds, even if this object is dropped. */
  close(): Promise<void>;
}
