// End to end with the Node backend instead of the Rust worker: the demo
// page in headless Chromium emits UI events, the gateway pushes them as
// signed webhooks to examples/webhook-backend (plain node:http, checking
// each signature with verifyWebhook), which answers with notifications
// through eventwire/server. Then the gateway (disk engine) is killed with
// SIGKILL and restarted: the webhook is kept, and the next click works.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { eventually, feed, freePort, jsonLines, openPage, repo, restartGateway, shutdown, startGateway } from './harness.mjs';

const backends = [];
after(async () => {
  for (const b of backends) b.kill('SIGTERM');
  await shutdown();
});

/** Starts the example webhook backend against `gateway`; `handled` collects what it handled. */
async function startWebhookBackend(gateway) {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(repo, 'examples/webhook-backend/server.mjs'), gateway, String(port)], {
    env: { ...process.env, EVENTWIRE_WEBHOOK_SECRET: 'whsec_' + Buffer.from('e2e-webhook-backend-secret-32-by').toString('base64') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  backends.push(child);
  const handled = jsonLines(child.stdout);
  await eventually('the webhook registered', async () => (await fetch(`${gateway}/v1/webhooks/demo-backend`)).ok);
  return { handled };
}

test('the demo with the webhook backend: clicks and notes come back as notifications, across a gateway SIGKILL', async () => {
  const gateway = await startGateway();
  const backend = await startWebhookBackend(gateway);
  const page = await openPage(`${gateway}/?transport=websocket`);

  await page.click('button[data-target=buy]');
  const mine = page.locator('#backend li').first();
  await mine.waitFor({ timeout: 15000 });
  assert.match(await mine.textContent(), /ui\.clicked → notification\.clicked/);
  const correlationid = await mine.getAttribute('data-correlationid');
  const rows = await eventually('the notification in the feed', async () => {
    const r = (await feed(page, 'notification.clicked')).filter((x) => x.correlationid === correlationid);
    return r.length ? r : null;
  });
  assert.equal(rows[0].data.message, 'Someone pressed buy');

  await page.fill('#note-text', 'hello by webhook');
  await page.click('#note-form button');
  await eventually('the note handled', () => backend.handled.some((h) => h.type === 'ui.submitted'));
  const notes = await eventually('the note notification', async () => {
    const r = await feed(page, 'notification.note');
    return r.length ? r : null;
  });
  assert.equal(notes[0].data.message, 'New note: hello by webhook');

  // The gateway dies; the webhook comes back from its data dir.
  await restartGateway(gateway);
  const info = await (await fetch(`${gateway}/v1/webhooks/demo-backend`)).json();
  assert.equal(info.config.url.endsWith('/hooks'), true);
  await page.locator('#badge[data-state="open"]').waitFor({ timeout: 20000 });
  await page.click('button[data-target=like]');
  await eventually('the click after the restart handled', () =>
    backend.handled.some((h) => h.type === 'ui.clicked' && h.data.target === 'like'),
  20000);
  // Each UI event handled once (max_inflight 1, ids deduplicated).
  const ids = backend.handled.map((h) => h.handled);
  assert.equal(new Set(ids).size, ids.length);
});
