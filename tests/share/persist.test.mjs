// `persist: true` in headless Chromium: emits made while the gateway is
// down survive a reload and reach a consumer group exactly once; without
// IndexedDB, or without SHA-256 to keep the token out of it, the channel
// says so once and keeps them in memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, stopGateway, startAgain, eventually } from '../e2e/harness.mjs';
import { LIMIT, testPage, context, tab, createGroup, drainGroup, exactlyOnce, restoredOnce } from './setup.mjs';

const page = await testPage();

/** A gateway with the consumer group `worker` on `r.>` (the test reads it
 * over HTTP), and a browser context (`init` runs in its pages first). */
async function withWorker(init) {
  const gw = await startGateway('--cors-origin', '*');
  await createGroup(gw, 'worker', ['r.>']);
  return { gw, ctx: await context(init) };
}

for (const share of [false, true]) {
  test(`20 emits made while the gateway is down survive a reload (share: ${share})`, { timeout: LIMIT }, async () => {
    const { gw, ctx } = await withWorker();
    const t = await tab(ctx, page.base, gw, { share, persist: true, connectTimeoutMs: 0 }, []);
    await stopGateway(gw);
    await t.evaluate(() => emit(20, 'down'));
    // Each emit is on disk before it is sent: nothing has settled yet.
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await t.evaluate(() => emits), []);
    await t.reload();
    await t.waitForFunction(() => window.ready);
    const started = t.evaluate((share) => start({ share, persist: true, connectTimeoutMs: 0 }, []), share);
    await new Promise((r) => setTimeout(r, 500));
    await startAgain(gw);
    await started;
    const restored = await restoredOnce(t, gw, 'down', 20);
    assert.ok(restored.every((r) => r.type == 'r.x' && r.data.i >= 0), JSON.stringify(restored[0]));
    assert.equal((await t.evaluate(() => restored)).length, 20, 'none restored with an error');
    // Settled emits leave the store: a second reload sends nothing again.
    await t.reload();
    await t.waitForFunction(() => window.ready);
    await t.evaluate((share) => start({ share, persist: true }, []), share);
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(await t.evaluate(() => restored), []);
    await ctx.close();
  });
}

test('a connect that times out after the reload loses nothing: the next one sends the emits', { timeout: LIMIT }, async () => {
  const { gw, ctx } = await withWorker();
  const t = await tab(ctx, page.base, gw, { persist: true }, []);
  await stopGateway(gw);
  await t.evaluate(() => emit(5, 'late'));
  await new Promise((r) => setTimeout(r, 500));
  await t.reload();
  await t.waitForFunction(() => window.ready);
  // A pattern, so that the channel needs a stream to be open (an SSE
  // channel with none is open at once, for emits alone).
  const failed = await t.evaluate(() => start({ persist: true, connectTimeoutMs: 1000, topics: ['r.>'] }, []).catch((e) => e.code));
  assert.equal(failed, 'connect_timeout');
  const started = t.evaluate(() => start({ persist: true, connectTimeoutMs: 0, topics: ['r.>'] }, []));
  await startAgain(gw);
  await started;
  await restoredOnce(t, gw, 'late', 5);
  await ctx.close();
});

test('the emits of a tab closed while the gateway is down are sent by another tab', { timeout: LIMIT }, async () => {
  const { gw, ctx } = await withWorker();
  const options = { share: true, persist: true, connectTimeoutMs: 0 };
  const stays = await tab(ctx, page.base, gw, options, []);
  const goes = await tab(ctx, page.base, gw, options, []);
  await stopGateway(gw);
  await goes.evaluate(() => emit(20, 'gone'));
  await new Promise((r) => setTimeout(r, 500));
  await goes.close();
  await startAgain(gw);
  // Reported in the tab that stayed.
  await restoredOnce(stays, gw, 'gone', 20);
  await ctx.close();
});

test('without IndexedDB, persist falls back to memory and says so once', { timeout: LIMIT }, async () => {
  const { gw, ctx } = await withWorker(() => Object.defineProperty(window, 'indexedDB', { get: () => undefined }));
  const t = await tab(ctx, page.base, gw, { persist: true }, []);
  await t.evaluate(() => emit(3, 'mem'));
  await eventually('the emits accepted', async () => (await t.evaluate(() => emits)).length == 3);
  assert.deepEqual((await t.evaluate(() => emits)).sort(), ['mem-0', 'mem-1', 'mem-2']);
  assert.deepEqual(await t.evaluate(() => errors), ['persist_unavailable']);
  exactlyOnce(assert, await drainGroup(gw, 'worker', 500), 'mem', 3, 'the worker');
  await ctx.close();
});

test('without crypto.subtle (not a secure context) the token is never stored: memory only, said once', { timeout: LIMIT }, async () => {
  const { gw, ctx } = await withWorker(() => Object.defineProperty(Crypto.prototype, 'subtle', { get: () => undefined }));
  // Not a JWT: the identity would be the token's hash, and there is no hash.
  const token = 'opaque-secret-token-0123456789';
  const t = await tab(ctx, page.base, gw, { persist: true, token, connectTimeoutMs: 0 }, []);
  await stopGateway(gw);
  await t.evaluate(() => emit(3, 'insecure'));
  await new Promise((r) => setTimeout(r, 500));
  // Everything this origin keeps in IndexedDB: database names, keys, records.
  const stored = await t.evaluate(async () => {
    const out = [];
    const done = (r) => new Promise((ok, ko) => ((r.onsuccess = () => ok(r.result)), (r.onerror = () => ko(r.error))));
    for (const { name } of await indexedDB.databases()) {
      const db = await done(indexedDB.open(name));
      out.push(name);
      for (const s of db.objectStoreNames) {
        const store = db.transaction(s).objectStore(s);
        out.push(s, JSON.stringify(await done(store.getAllKeys())), JSON.stringify(await done(store.getAll())));
      }
      db.close();
    }
    return out.join('\n');
  });
  assert.ok(!stored.includes(token), `the token is in IndexedDB:\n${stored}`);
  await startAgain(gw);
  await eventually('the emits accepted', async () => (await t.evaluate(() => emits)).length == 3);
  assert.deepEqual((await t.evaluate(() => emits)).sort(), ['insecure-0', 'insecure-1', 'insecure-2']);
  assert.deepEqual(await t.evaluate(() => errors), ['persist_unavailable']);
  exactlyOnce(assert, await drainGroup(gw, 'worker', 500), 'insecure', 3, 'the worker');
  await ctx.close();
});
