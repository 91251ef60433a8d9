// `persist: true`: the emits of a tab not yet accepted by the gateway, kept
// in IndexedDB so that a reload, or another tab of the app, sends them again
// with their own ids (the gateway's dedupe then makes each exactly-once).
// Used by share.js, which owns the emit path; this file only stores.

/** Web Locks, where the page has them (share.js uses them too). */
export const locks = globalThis.navigator?.locks;

/** The lock each tab holds while it lives: a record whose owner's lock is
 * free belongs to a tab that is gone (reloaded, closed, crashed). */
const TAB = 'eventwire tab ';

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
  let db = new Promise((ok, ko) => {
    const r = indexedDB.open('eventwire');
    r.onupgradeneeded = () => r.result.createObjectStore('outbox', { keyPath: 'k' });
    r.onsuccess = () => ok(r.result);
    r.onerror = () => ko(r.error);
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
  /** Runs `f` holding the lock of tab `tab` (until this tab closes). */
  const hold = (tab, f) => locks.request(TAB + tab, { signal: stop.signal }, f).catch(() => {});
  /** Resolves once this tab holds its own lock (at once without Web Locks).
   * Records are written only then, so the owner of any record has held its
   * lock: a free one means a tab that is gone. */
  const mine = new Promise((ok) =>
    locks
      ? hold(me, () => {
          ok();
          held();
          return new Promise((r) => (stop.signal.onabort = r));
        })
      : ok(),
  );

  let send, batch, saved;
  /** Calls `f(record, store)` for each record of this scope another tab
   * owns, in one transaction. */
  const each = (f) =>
    tx((s) => {
      s.getAll().onsuccess = (e) => e.target.result.forEach((r) => r.s == scope && r.owner != me && f(r, s));
    });
  /** Takes over the records of tab `o` (without Web Locks, of every other
   * tab) and hands each to `send`; settles once they are its own. */
  const claim = async (o) => {
    const out = [];
    await each((r, s) => (!locks || r.owner == o) && ((r.owner = me), s.put(r), out.push(r)));
    out.forEach(send);
  };
  /** Once tab `o` is gone (its lock free), takes over its records. Two
   * tabs never take the same: the lock is kept until they are taken. */
  const watch = (o) => {
    if (!watched.has(o)) {
      watched.add(o);
      locks ? hold(o, () => claim(o)) : claim();
    }
  };
  /** Watches the owner of every record: those gone (at once) and those
   * alive (when they go) have their records handed to `f`. */
  const restore = (f) => {
    send = f;
    each((r) => watch(r.owner));
  };

  return {
    /** Stores `rec` (an emit's options with its `id`, `type` and `d`, the
     * data as JSON) in one transaction with the others of this tick;
     * resolves once they are on disk, or storage has failed. The
     * transactions commit in the order they were made, so the emits go
     * out in order. */
    put(rec) {
      if (!batch) {
        const b = (batch = []);
        saved = mine.then(() => ((batch = 0), tx((s) => b.forEach((r) => s.put({ ...r, k: scope + ' ' + r.id, s: scope, owner: me })))));
      }
      batch.push(rec);
      return saved;
    },
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
