// What the share/persist tests add to tests/e2e/harness.mjs: the test page
// and the built package served from a server of their own (so a tab can
// reload while the gateway is down), tabs in one browser context, and a
// consumer group read over HTTP.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, repo, eventually, shutdown } from '../e2e/harness.mjs';

/** Per test (`test(name, { timeout: LIMIT }, …)`), so a hung page fails one test, not the run. */
export const LIMIT = 120_000;

const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };

/** Serves tests/share/page.html at / and channel-wasm/pkg at /pkg; answers its base URL and a stop function. */
export async function servePage() {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const file = url.pathname.startsWith('/pkg/')
      ? path.join(repo, 'channel-wasm', url.pathname.replace(/\.\./g, ''))
      : path.join(repo, 'tests/share/page.html');
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { base: `http://127.0.0.1:${server.address().port}`, stop: () => new Promise((r) => server.close(r)) };
}

/** The test page's server for this test file; it, the browser and the gateways go when the file's tests end. */
export async function testPage() {
  const page = await servePage();
  after(async () => {
    await shutdown();
    await page.stop();
  });
  return page;
}

/** Waits until tab `t` has reported `n` restored emits that were
 * accepted; asserts they are `prefix-0` … each once, and that consumer group
 * `worker` on gateway `gw` got each of them exactly once. */
export async function restoredOnce(t, gw, prefix, n) {
  const restored = await eventually(`${n} restored emits reported`, async () => {
    const r = await t.evaluate(() => restored.filter((r) => r.receipt));
    return r.length >= n && r;
  });
  exactlyOnce(assert, restored.map((r) => r.id), prefix, n, 'onRestoredEmit');
  exactlyOnce(assert, await drainGroup(gw, 'worker'), prefix, n, 'the worker');
  return restored;
}

/** A fresh browser context (one origin's storage, locks and BroadcastChannels), with `init` run in each page first. */
export async function context(init) {
  const ctx = await (await launchBrowser()).newContext();
  if (init) await ctx.addInitScript(init);
  return ctx;
}

/** Opens the test page in `ctx` against gateway `gw` and starts a channel with `options` and `patterns`; answers the page. `init` runs in the page first. */
export async function tab(ctx, base, gw, options, patterns, init) {
  const page = await ctx.newPage();
  if (init) await page.addInitScript(init);
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${base}/?gw=${encodeURIComponent(gw)}`);
  await page.waitForFunction(() => window.ready);
  page.shared = await page.evaluate(([o, p]) => start(o, p), [options, patterns]);
  return page;
}

/** For `tab`'s `init`: the page's timers fire at most once a second, as
 * Chromium runs a background tab's (headless Chromium shows every page as
 * visible, so it never throttles one itself). */
export function backgroundTimers() {
  // The page's measuring poll (`ledAt`) keeps the real one: it is not part
  // of what is imitated, and a poll once a second would add up to 1 s.
  window.measureInterval = window.setInterval;
  for (const name of ['setTimeout', 'setInterval']) {
    const real = window[name];
    window[name] = (f, ms, ...args) => real(f, Math.max(Number(ms) || 0, 1000), ...args);
  }
}

/** Open SSE and WebSocket connections on the gateway (`/readyz`). */
export async function connections(gw) {
  return (await (await fetch(`${gw}/readyz`)).json()).connections;
}

/** Waits until every page has `n` events, then answers each page's ids. */
export async function received(pages, n, what) {
  await eventually(what, async () => {
    const counts = await Promise.all(pages.map((p) => p.evaluate(() => got.length)));
    return counts.every((c) => c >= n);
  }, 60000);
  return Promise.all(pages.map((p) => p.evaluate(() => got)));
}

/** Publishes `n` events `type` with ids `prefix-i`, `pause` ms apart. */
export async function publishMany(gw, type, prefix, n, pause = 0) {
  for (let i = 0; i < n; i++) {
    const r = await fetch(`${gw}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type, id: `${prefix}-${i}`, data: { i } }),
    });
    if (!r.ok) throw new Error(`publish: ${r.status} ${await r.text()}`);
    if (pause) await new Promise((r) => setTimeout(r, pause));
  }
}

/** Creates consumer group `name` on `topics` (from now on). */
export async function createGroup(gw, name, topics) {
  const r = await fetch(`${gw}/v1/groups/${name}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ topics }),
  });
  if (!r.ok) throw new Error(`group: ${r.status} ${await r.text()}`);
}

/** Reads group `name` until it has been quiet for `quietMs`, acking each delivery; answers the event ids in order. */
export async function drainGroup(gw, name, quietMs = 2000) {
  const ids = [];
  for (;;) {
    const r = await fetch(`${gw}/v1/groups/${name}/fetch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ max: 1000, wait: `${quietMs}ms` }),
    });
    const { deliveries } = await r.json();
    if (!deliveries.length) return ids;
    for (const d of deliveries) ids.push(d.event.id);
    await fetch(`${gw}/v1/groups/${name}/ack`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ handles: deliveries.map((d) => d.handle) }),
    });
  }
}

/** Asserts `ids` holds `prefix-0` … `prefix-(n-1)`, each exactly once. */
export function exactlyOnce(assert, ids, prefix, n, who) {
  const mine = ids.filter((id) => id.startsWith(prefix + '-'));
  const want = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
  assert.deepEqual([...mine].sort(), want.sort(), `${who}: every ${prefix} event exactly once`);
}
