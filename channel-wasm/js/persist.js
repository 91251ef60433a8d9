// `persist: true`: the emits of a tab not yet accepted by the gateway, kept
// in IndexedDB so that a reload, or another tab of the app, sends them again
// with their own ids (the gateway's dedupe then makes each exactly-once).
// Used by share.js, which owns the emit path; this file only stores.

const locks = globalThis.navigator?.locks;

/** The lock each tab holds while it lives: a record whose owner's lock is
 * free belongs to a tab that is gone (reloaded, closed, crashed). */
const TAB = 'eventwire tab ';

const done = (r) =>
  new Promise((ok, ko) => {
    r.onsuccess = () => ok(r.result);
    r.onerror = () => ko(r.error);
  });

/**
 * The outbox of `scope` (origin, gateway and identity, from share.js) for
 * the tab `me`. `fail(error)` is called once, when IndexedDB is missing or
 * refuses a write (quota, private mode): from then on nothing is stored and
 * emits go out from memory only, as without `persist`. `held()` is called
 * once this tab holds its own lock: only then may others watch it (a lock
 * asked for by another tab first would make this one look gone).
 */
export function outbox(scope, me, fail, held) {
  const stop = new AbortController();
  const watched = new Set();
  const broken = (e) => db && ((db = null), fail(e));
  let db = Promise.resolve().then(() => {
    const r = indexedDB.open('eventwire');
    r.onupgradeneeded = () => r.result.createObjectStore('outbox', { keyPath: 'k' });
    return done(r);
  });
  db.catch(broken);
  /** Runs `f(store)` in one transaction; settles once it has committed.
   * Any failure turns storage off for this tab. */
  const tx = (f) =>
    db
      ?.then(
        (d) =>
          new Promise((ok, ko) => {
            const t = d.transaction('outbox', 'readwrite');
            f(t.objectStore('outbox'));
            t.oncomplete = ok;
            t.onerror = t.onabort = () => ko(t.error);
          }),
      )
      .catch(broken);
  locks
    ?.request(TAB + me, { signal: stop.signal }, () => {
      held();
      return new Promise((r) => (stop.signal.onabort = r));
    })
    .catch(() => {});

  let send;
  /** Once tab `o` is gone (its lock free), takes over its records. */
  const watch = (o) => {
    if (locks && !watched.has(o) && o != me) {
      watched.add(o);
      // Holding its lock, this tab would see `o` as alive: `gone` says not.
      locks.request(TAB + o, { signal: stop.signal }, () => restore(send, o)).catch(() => {});
    }
  };
  /** Takes over the records of tabs that are gone and hands each to
   * `send`; watches each tab still alive, to take over its records when it
   * goes. Under one lock, so two tabs never take the same. */
  const restore = (f, gone) => {
    send = f;
    const claim = async () => {
      const held = new Set(locks ? (await locks.query()).held.map((l) => l.name) : []);
      const out = [];
      const alive = [];
      await tx((s) => {
        s.getAll().onsuccess = (e) => {
          for (const r of e.target.result) {
            if (r.s != scope || r.owner == me) continue;
            if (r.owner != gone && held.has(TAB + r.owner)) alive.push(r.owner);
            else {
              r.owner = me;
              s.put(r);
              out.push(r);
            }
          }
        };
      });
      out.forEach(send);
      alive.forEach(watch);
    };
    return locks ? locks.request('eventwire restore', claim) : claim();
  };

  return {
    /** Stores `recs` (`{ id, type, d, o }`, `d` the data as JSON);
     * resolves once they are on disk, or storage has failed. */
    put: (recs) => tx((s) => recs.forEach((r) => s.put({ ...r, k: scope + ' ' + r.id, s: scope, owner: me }))),
    del: (id) => tx((s) => s.delete(scope + ' ' + id)),
    restore,
    watch,
    close() {
      stop.abort();
      db?.then((d) => d.close());
      db = null;
    },
  };
}
