// `share: true` (one connection for all tabs of an app) and `persist: true`
// (emits kept across reloads): a layer over the plain EventChannel, using
// only its public API. index.js hands `connect` here when either is set.
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
// Written as one closure rather than a class: the minifier shortens its
// variables, not `this.#field`s (the goal for this layer is 2 KB gzip;
// docs/CLIENT-SIZE.md has what it costs).
import { Callbacks, failure, uuid } from './io.js';
import { outbox } from './persist.js';

const locks = globalThis.navigator?.locks;
const now = Date.now;

/** PROTOCOL §3.1, checked here because a follower has no channel to ask. */
const PATTERN = /^(([\w-]{1,64}|\*)\.)*([\w-]{1,64}|\*|>)$/;

/** The leader posts its state every TICK ms. A follower that has heard
 * nothing for QUIET ms pings it, and after DEAD ms takes the lock by force
 * (a frozen leader keeps its lock). The leader answers a ping from its
 * message handler, which background throttling (of timers) does not slow. */
const TICK = 250,
  QUIET = 500,
  DEAD = 1100;

const resolve = (f) => (typeof f == 'function' ? f() : f);

/** Who the token speaks for: a JWT's `iss` and `sub` (stable across
 * refreshes), else the token itself, hashed where the page can. Tabs of
 * different identities never share a connection or an outbox. */
async function identity(token) {
  const t = await resolve(token);
  if (!t) return '';
  try {
    const c = JSON.parse(atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    if (c.sub) return c.iss + ' ' + c.sub;
  } catch {}
  const h = await crypto.subtle?.digest('SHA-256', new TextEncoder().encode(t));
  return h ? new Uint8Array(h).join() : t;
}

/** `EventChannel.connect` with `share` or `persist`; `connect` opens a
 * plain channel. Resolves once this tab's channel, or the leader's, is open. */
export async function layer(o, connect) {
  const key = `eventwire ${o.url} ${await identity(o.token)}`;
  const me = uuid();
  const cb = new Callbacks();
  /** This tab's handlers' patterns by handler id (the functions are in `cb`). */
  const subs = new Map();
  /** Every tab's patterns, by tab id: the leader subscribes with the union. */
  const tabs = new Map();
  /** Leader: the unsubscribe function of each pattern of the union. */
  const offs = new Map();
  const seen = new Set();
  /** This tab's emits not yet answered: id → [record, resolve, reject]. */
  const pending = new Map();
  const bc = o.share && locks && globalThis.BroadcastChannel && new BroadcastChannel(key);
  const post = (m) => bc && bc.postMessage(m);
  /** Errors before `connect` resolves wait for the app's `onError`. */
  const early = [];
  let report = (e) => early.push(e);
  let held;
  const store =
    o.persist &&
    outbox(
      key,
      me,
      (e) => report(failure('persist_unavailable', 'no IndexedDB: emits kept in memory', e)),
      () => ((held = 1), announce()),
    );
  /** The plain channel, while this tab leads and it is open. */
  let inner;
  /** Bumped when this tab starts or stops leading. */
  let gen = 0;
  let leading;
  let last = null;
  let heard = now();
  let stealing, granted, election, release, closed, batch, fatal;
  let saved = Promise.resolve();

  const state = (s, i, lead) => {
    cb.now = [s, i.transport];
    for (const f of [...cb.states.values()]) cb.call(f, s, i);
    if (lead) post({ t: 's', s, i, last });
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
    for (const [id, q] of subs) if (q == p) cb.handle(id, e);
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
        offs.has(p) || offs.set(p, inner.subscribe(p, (e) => take(e, p) && post({ t: 'e', e, p })));
      } catch (e) {
        report(e);
      }
    }
    for (const [p, off] of offs) u.includes(p) || (off(), offs.delete(p));
  };
  /** Tells the other tabs this tab's patterns (handlers' and `topics`). */
  const announce = () => {
    const p = [...new Set([...(o.topics || []), ...subs.values()])];
    tabs.set(me, p);
    post({ t: 'hi', from: me, p, held });
    sync();
  };

  const settle = (id, r, e) => {
    const p = pending.get(id);
    if (p) {
      pending.delete(id);
      store && store.del(id);
      e ? p[2](e) : p[1](r);
    }
  };
  /** Leader: sends emit `rec` of tab `from` and answers it there. A channel
   * let go (this tab stopped leading) rejects with `closed`: the emit then
   * stays with its tab, for the next leader. */
  const send = (rec, from) => {
    const ch = inner;
    const answer = (r, e) =>
      ch == inner && (from == me ? settle(rec.id, r, e) : post({ t: 'a', to: from, id: rec.id, r, c: e?.code, m: e?.message }));
    ch.emit(rec.type, JSON.parse(rec.d), rec.o).then(answer, (e) => answer(0, e));
  };
  /** An emit of this tab: by its channel when it leads, else to the leader. */
  const route = (rec) => (inner ? send(rec, me) : leading || post({ t: 'em', from: me, rec }));
  const resend = () => pending.forEach(([rec]) => route(rec));

  const lead = async () => {
    const g = ++gen;
    leading = 1;
    if (bc) tab.shared = 'leader';
    beat();
    // Resumes after the last position the tabs saw, so the gateway replays
    // what the old leader never passed on. Waits as long as it takes: the
    // app's connectTimeoutMs is this layer's, and a later leader has no one
    // to give up to.
    const ch = await connect({ ...o, share: 0, persist: 0, topics: union(), since: last, connectTimeoutMs: 0 }).catch((e) =>
      fatal(e),
    );
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
      post({ t: 'x', c: e.code, m: e.message });
    });
    sync();
    state(ch.state, i, 1);
    // The other tabs answer with their patterns and unanswered emits.
    post({ t: 'who', lead: 1 });
    resend();
  };

  /** Stops leading: the lock was stolen from this frozen or slow tab. */
  const follow = () => {
    gen++;
    leading = 0;
    tab.shared = 'follower';
    const ch = inner;
    inner = null;
    offs.clear();
    heard = now();
    ch?.close();
    resend();
  };

  /** Queues for the lock, or (`steal`) takes it from a leader that stopped
   * answering; losing it (stolen while frozen) makes this tab a follower. */
  const elect = (steal) => {
    election?.abort();
    const ac = (election = new AbortController());
    locks
      .request(key, steal ? { steal } : { signal: ac.signal }, () => {
        lead();
        // The steal lock is kept a while, until the others have heard
        // this tab lead: a lock and a message travel apart.
        granted && setTimeout(granted, DEAD);
        return new Promise((r) => (release = r));
      })
      .catch(() => election == ac && !closed && (follow(), elect()));
  };

  /** The leader's state, as the other tabs mirror it. */
  const beat = () => post({ t: 's', s: tab.state, i: { transport: tab.transport, attempt: 0 }, last });

  const tick = () => {
    const quiet = now() - heard;
    // A leader still connecting beats too, or the others would take over again.
    if (leading) beat();
    else if (quiet < QUIET) return;
    else if (quiet < DEAD || stealing) post({ t: 'ping' });
    // One follower steals: the one that gets this lock.
    else
      stealing = locks
        .request(key + ' steal', { ifAvailable: true }, (l) => l && now() - heard > DEAD && new Promise((r) => ((granted = r), elect(1))))
        .finally(() => (stealing = granted = null));
  };

  /** A message from another tab. */
  const hear = ({ data: m }) => {
    const t = m.t;
    if (t == 'e' || t == 's' || (t == 'who' && m.lead)) heard = now();
    if (t == 'e') take(m.e, m.p);
    else if (t == 's') {
      if (!leading) {
        last ??= m.last;
        if (m.s != tab.state || m.i.recovered === false) state(m.s, m.i);
      }
    } else if (t == 'ping') leading && tick();
    else if (t == 'who') {
      // A new tab asks for the others' patterns; a new leader, also for
      // the emits still unanswered.
      announce();
      if (m.lead && !leading) resend();
    } else if (t == 'hi') {
      // With persist, the emits of a tab that goes are taken over at once.
      store && m.held && store.watch(m.from);
      tabs.set(m.from, m.p);
      sync();
    } else if (t == 'bye') {
      tabs.delete(m.from);
      sync();
    } else if (t == 'em') inner && send(m.rec, m.from);
    else if (t == 'a') m.to == me && settle(m.id, m.r, m.c && failure(m.c, m.m));
    else if (t == 'x' && !leading) cb.report(failure(m.c, m.m));
  };

  const tab = {
    /** `'leader'` or `'follower'` with `share`; false when this tab has a
     * connection of its own (no `share`, or no Web Locks / BroadcastChannel). */
    shared: !!bc && 'follower',
    subscribe(pattern, handler) {
      if (!PATTERN.test(pattern)) throw failure('invalid_pattern', `invalid pattern: ${pattern}`);
      const id = ++cb.n;
      subs.set(id, pattern);
      cb.handler(id, handler);
      announce();
      return () => subs.delete(id) && (cb.handler(id), announce());
    },
    /** Kept (with `persist`) before it is sent, so a reload after `emit`
     * returns finds it; the emits of one tick share one transaction. The
     * data travels as the JSON the gateway gets: what JSON cannot hold is
     * refused here, and the record passes between tabs and into
     * IndexedDB as it is. */
    emit(type, data, options) {
      if (closed) return Promise.reject(failure('closed', 'the channel is closed'));
      if (pending.size >= (o.outboxSize ?? 1000)) return Promise.reject(failure('outbox_full', 'too many emits waiting'));
      let d;
      try {
        d = JSON.stringify(data) ?? 'null';
      } catch (e) {
        return Promise.reject(failure('invalid_event', e.message));
      }
      const id = options?.id ?? uuid();
      const rec = { id, type, d, o: { ...options, id } };
      if (store && !batch) {
        const b = (batch = []);
        saved = Promise.all([saved, Promise.resolve().then(() => ((batch = 0), store.put(b)))]);
      }
      batch?.push(rec);
      return new Promise((ok, ko) => {
        pending.set(id, [rec, ok, ko]);
        saved.then(() => pending.has(id) && route(rec));
      });
    },
    get state() {
      return cb.now[0];
    },
    get transport() {
      return cb.now[1];
    },
    get lastSeq() {
      return last;
    },
    onState: (f) => cb.listen(0, f),
    onError: (f) => cb.listen(1, f),
    /** Lets the lock go at once, so another tab leads without waiting. */
    async close() {
      if (closed) return;
      closed = 1;
      post({ t: 'bye', from: me });
      bc && bc.close();
      clearInterval(timer);
      election?.abort();
      release?.();
      gen++;
      const ch = inner;
      inner = null;
      await ch?.close();
      // The records stay: not accepted, they go out from the next page or
      // tab (a connect that timed out closes too, and must lose nothing).
      store && store.close();
      for (const [, p] of pending) p[2](failure('closed', 'the channel was closed before the gateway accepted this event'));
      pending.clear();
      state('closed', { transport: tab.transport, attempt: 0 });
    },
  };

  const timer = bc && setInterval(tick, TICK);
  if (bc) bc.onmessage = hear;
  announce();
  post({ t: 'who' });
  bc ? elect() : lead();
  store &&
    store.restore((rec) => {
      const done = (r) => o.onRestoredEmit?.({ id: rec.id, type: rec.type, data: JSON.parse(rec.d), ...r });
      pending.set(rec.id, [rec, (receipt) => done({ receipt }), (error) => done({ error })]);
      route(rec);
    });

  const ms = o.connectTimeoutMs ?? 10_000;
  await new Promise((ok, ko) => {
    const fail = (e) => (off(), tab.close(), ko(e));
    const off = tab.onState((s) => s == 'open' && (off(), clearTimeout(t), ok()));
    const t = ms > 0 && setTimeout(() => fail(failure('connect_timeout', `no connection to ${o.url} within ${ms} ms`)), ms);
    fatal = fail;
  });
  // What went wrong before the app could listen (storage unavailable)
  // goes to its `onError` listeners.
  report = (e) => cb.report(e);
  setTimeout(() => early.splice(0).forEach(report));
  return tab;
}
