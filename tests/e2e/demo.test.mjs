// End-to-end: the demo page in headless Chromium, real gateways, the real
// example worker. Run by scripts/test after it has built the gateway, the
// worker, the npm package and the page (`node --test tests/e2e/`).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { eventually, feed, openPage, publish, repo, shutdown, startGateway, startWorker } from './harness.mjs';

after(shutdown);

const artifacts = path.join(repo, 'tests/e2e/artifacts');
mkdirSync(artifacts, { recursive: true });

/** A burst far over the 16 KiB outbox of a "tight" gateway: it cuts the page off. */
async function burst(gateway, from, to) {
  const events = [];
  for (let n = from; n <= to; n++) {
    events.push({ type: 'notification.bulk', data: { message: `bulk ${n}`, n, pad: 'p'.repeat(300) } });
  }
  await publish(gateway, events);
}

for (const transport of ['websocket', 'sse']) {
  test(`cross-page round trip over ${transport}`, async () => {
    const gateway = await startGateway();
    await startWorker(gateway);
    const a = await openPage(`${gateway}/?transport=${transport}`);
    const b = await openPage(`${gateway}/?transport=${transport}`);
    assert.equal(await a.locator('#badge').getAttribute('data-transport'), transport);

    await a.click('button[data-target=buy]');
    // A sees what the backend did about its click...
    const mine = a.locator('#backend li').first();
    await mine.waitFor({ timeout: 10000 });
    const correlationid = await mine.getAttribute('data-correlationid');
    assert.match(correlationid, /^c-/);
    assert.match(await mine.textContent(), /ui\.clicked → notification\.clicked/);
    // ...and B's feed shows the same notification, with the same correlation id.
    const rows = await eventually('the notification on page B', async () => {
      const r = (await feed(b, 'notification.clicked')).filter((x) => x.correlationid === correlationid);
      return r.length ? r : null;
    });
    assert.equal(rows.length, 1);
    assert.equal(rows[0].data.message, 'Someone pressed buy');

    if (transport === 'websocket') {
      await a.click('button[data-target=like]');
      await a.fill('#note-text', 'hello from the demo');
      await a.click('#note-form button');
      await a.locator('#backend li').nth(2).waitFor({ timeout: 10000 });
      const shot = path.join(artifacts, 'demo.png');
      await a.screenshot({ path: shot });
      mkdirSync(path.join(repo, 'docs'), { recursive: true });
      copyFileSync(shot, path.join(repo, 'docs/demo.png'));
    }
  });
}

test('a backend push shows up as a toast', async () => {
  const gateway = await startGateway();
  const page = await openPage(`${gateway}/`);
  await publish(gateway, { type: 'notification.alert', data: { message: 'Your order shipped' } });
  const toast = page.locator('.toast', { hasText: 'Your order shipped' });
  await toast.waitFor({ timeout: 10000 });
  const [row] = await feed(page, 'notification.alert');
  assert.deepEqual(row.data, { message: 'Your order shipped' });
});

for (const transport of ['websocket', 'sse']) {
  test(`a connection cut during 200 events loses and repeats nothing, over ${transport}`, async () => {
    const gateway = await startGateway('--outbox-bytes', '16384');
    const page = await openPage(`${gateway}/?transport=${transport}&minBackoffMs=200`);
    await burst(gateway, 1, 100);
    await burst(gateway, 101, 200);
    const rows = await eventually('200 bulk events', async () => {
      const r = await feed(page, 'notification.bulk');
      return r.length >= 200 ? r : null;
    });
    await new Promise((r) => setTimeout(r, 300));
    const ns = (await feed(page, 'notification.bulk')).map((r) => r.data.n);
    assert.deepEqual(ns, Array.from({ length: 200 }, (_, i) => i + 1), 'each event once, in order');
    assert.equal(rows.length, 200);
    const reconnects = Number(await page.locator('#badge').getAttribute('data-reconnects'));
    assert.ok(reconnects >= 1, 'the gateway really cut the connection');
    assert.equal(await page.locator('#badge').getAttribute('data-state'), 'open');
  });
}

test('UI events emitted while offline reach the worker once each, in order', async () => {
  const gateway = await startGateway('--outbox-bytes', '16384');
  const worker = await startWorker(gateway);
  // A long first backoff gives a wide offline window.
  const page = await openPage(`${gateway}/?transport=websocket&minBackoffMs=3000`);
  await burst(gateway, 1, 100);
  await page.locator('#badge[data-state="reconnecting"]').waitFor({ timeout: 10000 });
  for (let i = 0; i < 20; i++) await page.click('button[data-target=share]');
  assert.equal(await page.locator('#badge').getAttribute('data-state'), 'reconnecting', 'all 20 clicks happened offline');
  const clicks = await eventually('the worker to handle 20 clicks', () => {
    const c = worker.handled.filter((h) => h.type === 'ui.clicked').map((h) => h.data.click);
    return c.length >= 20 ? c : null;
  });
  await new Promise((r) => setTimeout(r, 500));
  const all = worker.handled.filter((h) => h.type === 'ui.clicked').map((h) => h.data.click);
  assert.deepEqual(all, Array.from({ length: 20 }, (_, i) => i + 1), 'once each, in order');
  assert.equal(clicks.length, 20);
  await page.locator('#backend li').nth(19).waitFor({ timeout: 10000 });
});

test('two workers side by side handle each UI event exactly once overall', async () => {
  const gateway = await startGateway();
  // Both join the same consumer group (demo-worker): competing consumers.
  const workers = [await startWorker(gateway), await startWorker(gateway)];
  const page = await openPage(`${gateway}/`);
  for (let i = 0; i < 30; i++) await page.click('button[data-target=share]');
  const clicks = (w) => w.handled.filter((h) => h.type === 'ui.clicked').map((h) => h.data.click);
  await eventually('the workers to handle 30 clicks', () => workers.flatMap(clicks).length >= 30);
  // Late repeats would show up here.
  await new Promise((r) => setTimeout(r, 1000));
  const all = workers.flatMap(clicks).sort((x, y) => x - y);
  assert.deepEqual(all, Array.from({ length: 30 }, (_, i) => i + 1), 'each click handled once, by one of the two');
});

test('auto falls back to SSE when the gateway refuses WebSocket', async () => {
  const gateway = await startGateway('--websocket=false');
  await startWorker(gateway);
  const page = await openPage(`${gateway}/?transport=auto`);
  assert.equal(await page.locator('#badge').getAttribute('data-transport'), 'sse');
  assert.match(await page.locator('#badge').textContent(), /open · sse/);
  await page.click('button[data-target=like]');
  await page.locator('#backend li').first().waitFor({ timeout: 10000 });
});

test('an oversized emit shows a clear error and the page keeps working', async () => {
  const gateway = await startGateway();
  await startWorker(gateway);
  const page = await openPage(`${gateway}/`);
  await page.fill('#note-text', 'x'.repeat(70_000));
  await page.click('#note-form button');
  const error = page.locator('#error');
  await error.waitFor({ state: 'visible', timeout: 5000 });
  assert.match(await error.textContent(), /^event_too_large: .*65536/);
  await page.click('button[data-target=buy]');
  await page.locator('#backend li').first().waitFor({ timeout: 10000 });
  assert.equal(await error.isHidden(), true, 'the next emit clears the error');
});
