// `share: true` (one connection for all tabs of an app) and `persist: true`
// (emits kept across reloads): a layer over the plain EventChannel, using
// only its public API. index.js loads this file, with persist.js, as a chunk
// of its own (a dynamic import()) and hands `EventChannel` here when either
// is set; what the app gets back is an EventChannel too (a subclass whose
// subscribe, emit, position and close are this layer's).
//
// One tab, the leader, holds the lock named after the app's key (Web Locks)
// and with it the one plain EventChannel; it subscribes with the union of
// every tab's patterns and posts each event, with the pattern it matched,
// on a BroadcastChannel of the same name. Every tab gives it to its
// handlers of that pattern, once (deduplicated by id, across leaders too).
// Emits go through the leader and are answered to the tab that made them;
// a tab keeps each emit until it is answered and sends it again, same id,
// to every new leader: the gateway's dedupe makes a resend harmless.
//
// The state lives in one closure, not in a class's fields: the minifier
// shortens variables, not `this.#field`s (the goal for this layer is 2 KB
// gzip; docs/CLIENT-SIZE.md has what it costs and why it is not reached).
// The subclass's methods only reach into that closure.
import { locks, outbox } from './persist.js';

const now = Date.now;

/** PROTOCOL §3.1, checked here because a follower has no channel to ask. */
const PATTERN = /^(([\w-]{1,64}|\*)\.)*([\w-]{1,64}|[*>])$/;

/** The leader posts its state every TICK ms. A follower that has heard
 * nothing for QUIET ms pings it, and after DEAD ms takes the lock by force
 * (a frozen leader keeps its lock). The leader answers a ping from its
 * message handler, which background throttling (of timers) does not slow. */
const TICK = 250,
  QUIET = 500,
  DEAD = 1100;

/** Each message between tabs is an array, its kind first, then the fields
 * in a fixed order (no property names to post): */
/** [EVENT, event, pattern]: the leader's channel matched `event` to `pattern`. */
const EVENT = 0;
/** [STATE, state, info, last]: the leader's state, mirrored by the others. */
const STATE = 1;
/** [WHO, lead]: a new tab (a new leader: `lead`) asks for the others' patterns. */
const WHO = 2;
/** [HI, tab, patterns, held]: a tab's patterns; none when it goes. */
const HI = 3;
/** [PING]: a follower that heard nothing for a while. */
const PING = 4;
/** [EMIT, record]: an emit of a follower, for the leader to send. */
const EMIT = 5;
/** [ANSWER, id, receipt, code, message]: the leader's answer to an emit,
 * for whichever tab has it (ids are unique). */
const ANSWER = 6;
/** [ERROR, code, message]: what the leader's channel reported. */
const ERROR = 7;

/** Who the token speaks for: a JWT's `iss` and `sub` (stable across
 * refreshes), else the token's SHA-256. Tabs of different identities never
 * share a connection or an outbox. Without SHA-256 (not a secure context)
 * the token itself, in an array: it may name this tab's lock and channel,
 * which live in memory, but it is never stored. */
async function identity(token) {
  const t = await (typeof token == 'function' ? token() : token);
  if (!t) return '';
  try {
    const c = JSON.parse(atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    if (c.sub) return c.iss + ' ' + c.sub;
  } catch {}
  const h = await crypto.subtle?.digest('SHA-256', new TextEncoder().encode(t));
  return h ? new Uint8Array(h).join() : [t];
}

/** `EventChannel.connect` with `share` or `persist`; `E` is the plain
 * `EventChannel`, whose `connect` opens a plain channel. Resolves once this
 * tab's channel, or the leader's, is open. The rest are io.js's, passed in
 * by index.js (not imported: this file is a chunk of its own, loaded by
 * import(), and the core stays one chunk). */
export async function layer(o, E, Callbacks, failure, uuid, opened, json) {
  const id = await identity(o.token);
  const key = `eventwire ${o.url} ${id}`;
  const me = uuid();
  const cb = Callbacks();
  /** This tab's handlers (each wrapped, so one function subscribed twice
   * is two entries) and their patterns. */
  const subs = new Map();
  /** Every tab's patterns, by tab id: the leader subscribes with the union. */
  const tabs = new Map();
  /** Leader: the unsubscribe function of each pattern of the union. */
  const offs = new Map();
  const seen = new Set();
  /** This tab's emits not yet answered: id → [record, resolve, reject]. */
  const pending = new Map();
  const bc = o.share && locks && globalThis.BroadcastChannel ? new BroadcastChannel(key) : null;
  const post = (m) => bc?.postMessage(m);
  /** Errors before `connect` resolves wait for the app's `onError`. */
  const early = [];
  let report = (e) => early.push(e);
  let held;
  // The records' keys hold `key`: none where it is the token itself.
  const store = !o.persist
    ? null
    : id.pop
      ? void report(failure('persist_unavailable', 'no SHA-256 (not a secure context): emits stay in memory'))
      : outbox(
          key,
          me,
          (e) => report(failure('persist_unavailable', 'IndexedDB unusable', e)),
          () => ((held = 1), announce()),
        );
  /** The plain channel, while this tab leads and it is open. */
  let inner;
  /** Bumped when this tab starts or stops leading. */
  let gen = 0;
  let leading;
  let last = null;
  let heard = now();
  let stealing, granted, election, closed;
  /** Why the leader's channel could not be made (a bad option): what
   * `connect` rejects with, rather than `closed`. */
  let fatal;

  const state = (s, i, lead) => {
    cb.state(s, i);
    if (lead) post([STATE, s, i, last]);
  };

  /** Delivers `e`, which the leader's channel matched to pattern `p`, to
   * this tab's handlers of `p`, unless they had it already (a new leader
   * may replay some); answers whether it was new. */
  const take = (e, p) => {
    const k = `${e.source} ${e.id} ${p}`;
    if (seen.has(k)) return;
    seen.add(k);
    if (seen.size > 4096) seen.delete(seen.values().next().value);
    last = e.seq;
    for (const [f, q] of subs) if (q == p) f(e);
    return 1;
  };

  const union = () => [...new Set([...tabs.values()].flat())];
  /** Leader: subscribes its channel to the union of the tabs' patterns. */
  const sync = () => {
    if (!inner) return;
    const u = union();
    for (const p of u) {
      try {
        // The channel calls this once per event and pattern, as it
        // calls the handlers of a plain channel: the pattern goes with it.
        offs.has(p) || offs.set(p, inner.subscribe(p, (e) => take(e, p) && post([EVENT, e, p])));
      } catch (e) {
        report(e);
      }
    }
    for (const [p, off] of offs) u.includes(p) || (off(), offs.delete(p));
  };
  /** Tells the other tabs this tab's patterns (handlers' and `topics`). */
  const announce = () => {
    const p = [...(o.topics || []), ...subs.values()];
    tabs.set(me, p);
    post([HI, me, p, held]);
    sync();
  };

  const settle = (id, r, e) => {
    const p = pending.get(id);
    if (pending.delete(id)) {
      store?.del(id);
      e ? p[2](e) : p[1](r);
    }
  };
  /** Leader: sends emit `rec` (its own or another tab's) and answers the
   * tab that has it. A channel let go (this tab stopped leading) rejects
   * with `closed`: the emit then stays with its tab, for the next leader. */
  const send = (rec) => {
    const ch = inner;
    const answer = (r, e) => ch == inner && (settle(rec.id, r, e), post([ANSWER, rec.id, r, e?.code, e?.message]));
    ch.emit(rec.type, JSON.parse(rec.d), rec).then(answer, (e) => answer(0, e));
  };
  /** An emit of this tab: by its channel when it leads, else to the leader. */
  const route = (rec) => (inner ? send(rec) : leading || post([EMIT, rec]));
  const resend = () => pending.forEach(([rec]) => route(rec));

  const lead = async () => {
    const g = ++gen;
    leading = 1;
    tab.shared &&= 'leader';
    beat();
    // Resumes after the last position the tabs saw, so the gateway replays
    // what the old leader never passed on. Waits as long as it takes: the
    // app's connectTimeoutMs is this layer's, and a later leader has no one
    // to give up to.
    const ch = await E.connect({ ...o, share: 0, persist: 0, topics: union(), since: last, connectTimeoutMs: 0 }).catch((e) => {
      fatal = e;
      tab.close();
    });
    if (g != gen || !ch) return ch?.close();
    inner = ch;
    const i = { transport: ch.transport, attempt: 0 };
    // A position the gateway could not resume from is replaced by its
    // live start (PROTOCOL §4.3): events may be missing.
    if (last && ch.lastSeq != last) i.recovered = false;
    last = ch.lastSeq;
    ch.onState((s, i) => ch == inner && state(s, i, 1));
    ch.onError((e) => {
      report(e);
      post([ERROR, e.code, e.message]);
    });
    sync();
    state(ch.state, i, 1);
    // The other tabs answer with their patterns and unanswered emits.
    post([WHO, 1]);
    resend();
  };

  /** Lets this tab's channel go (and any that is still connecting). */
  const drop = () => {
    gen++;
    const ch = inner;
    inner = null;
    offs.clear();
    return ch?.close();
  };

  /** Stops leading: the lock was stolen from this frozen or slow tab. */
  const follow = () => {
    drop();
    leading = 0;
    tab.shared = 'follower';
    heard = now();
    resend();
  };

  /** Queues for the lock, or (`steal`) takes it from a leader that stopped
   * answering; losing it (stolen while frozen) makes this tab a follower.
   * Aborting `election` gives up the request, or the lock once held. */
  const elect = (steal) => {
    election?.abort();
    const ac = (election = new AbortController());
    locks
      .request(key, steal ? { steal } : { signal: ac.signal }, () => {
        lead();
        // The steal lock is kept a while, until the others have heard
        // this tab lead: a lock and a message travel apart.
        granted && setTimeout(granted, DEAD);
        return new Promise((r) => (ac.signal.onabort = r));
      })
      .catch(() => election == ac && !closed && (follow(), elect()));
  };

  /** The leader's state, as the other tabs mirror it. */
  const beat = () => post([STATE, tab.state, { transport: tab.transport, attempt: 0 }, last]);

  const tick = () => {
    const quiet = now() - heard;
    // A leader still connecting beats too, or the others would take over again.
    if (leading) beat();
    else if (quiet < QUIET) return;
    else if (quiet < DEAD || stealing) post([PING]);
    // One follower steals: the one that gets this lock.
    else
      stealing = locks
        .request(key + ' steal', { ifAvailable: true }, (l) => l && now() - heard > DEAD && new Promise((r) => ((granted = r), elect(1))))
        .finally(() => (stealing = granted = null));
  };

  /** A message from another tab (the kinds are above). */
  const hear = ({ data: [t, a, b, c, d] }) => {
    // The leader's events and state (a new leader's too: it posts its
    // state before it asks `WHO`).
    if (t <= STATE) heard = now();
    if (t == EVENT) take(a, b);
    else if (t == STATE) {
      if (!leading) {
        last ??= c;
        if (a != tab.state || b.recovered === false) state(a, b);
      }
    } else if (t == PING) leading && tick();
    else if (t == WHO) {
      // A new tab asks for the others' patterns; a new leader, also for
      // the emits still unanswered.
      announce();
      if (a && !leading) resend();
    } else if (t == HI) {
      // With persist, the emits of a tab that goes are taken over at once.
      c && store?.watch(a);
      tabs.set(a, b);
      sync();
    } else if (t == EMIT) inner && send(a);
    else if (t == ANSWER) settle(a, b, c && failure(c, d));
    else if (t == ERROR && !leading) cb.report(failure(a, b));
  };

  /** What the app gets: an `EventChannel` (its `state`, `transport`,
   * `onState` and `onError` are the plain channel's, over `cb`) whose
   * subscribe, emit, position and close go through this layer. */
  const tab = new (class extends E {
    subscribe(pattern, handler) {
      if (!PATTERN.test(pattern)) throw failure('invalid_pattern', `invalid pattern: ${pattern}`);
      // A handler that throws reports `handler_error`; none: only subscribes.
      const f = (e) => cb.call(handler, e);
      subs.set(f, pattern);
      announce();
      return () => subs.delete(f) && announce();
    }
    /** Kept (with `persist`) before it is sent, so a reload after `emit`
     * returns finds it; the emits of one tick share one transaction. The
     * data travels as the JSON the gateway gets (what JSON cannot hold is
     * refused here, as by a plain channel), and the record passes between
     * tabs and into IndexedDB as it is. */
    async emit(type, data, options) {
      if (closed) throw failure('closed', 'the channel is closed');
      if (pending.size >= (o.outboxSize ?? 1000)) throw failure('outbox_full', 'too many emits waiting');
      const d = json(data) ?? 'null';
      const id = options?.id ?? uuid();
      const rec = { ...options, id, type, d };
      const p = new Promise((ok, ko) => pending.set(id, [rec, ok, ko]));
      await store?.put(rec);
      pending.has(id) && route(rec);
      return p;
    }
    get lastSeq() {
      return last;
    }
    /** Lets the lock go at once, so another tab leads without waiting. */
    async close() {
      if (closed) return;
      closed = 1;
      post([HI, me, []]);
      bc?.close();
      clearInterval(timer);
      election?.abort();
      await drop();
      // The records stay: not accepted, they go out from the next page or
      // tab (a connect that timed out closes too, and must lose nothing).
      store?.close();
      pending.forEach((p) => p[2](failure('closed', 'the channel is closed')));
      pending.clear();
      state('closed', { transport: tab.transport, attempt: 0 });
    }
  })(cb);
  /** `'leader'` or `'follower'` with `share`; false when this tab has a
   * connection of its own (no `share`, or no Web Locks / BroadcastChannel). */
  tab.shared = !!bc && 'follower';

  const timer = bc && setInterval(tick, TICK);
  if (bc) bc.onmessage = hear;
  announce();
  post([WHO]);
  bc ? elect() : lead();
  store?.restore((rec) => {
    const done = (r) => o.onRestoredEmit?.({ id: rec.id, type: rec.type, data: JSON.parse(rec.d), ...r });
    pending.set(rec.id, [rec, (receipt) => done({ receipt }), (error) => done({ error })]);
    route(rec);
  });

  await opened(cb, o, tab.close).catch((e) => {
    throw fatal || e;
  });
  // What went wrong before the app could listen (storage unavailable)
  // goes to its `onError` listeners.
  report = (e) => cb.report(e);
  setTimeout(() => early.splice(0).forEach(report));
  return tab;
}
