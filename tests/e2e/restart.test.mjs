// End-to-end: the gateway (default disk engine) is restarted under the demo
// page and the example worker, once killed with SIGKILL and once stopped
// with SIGTERM. The page must resume where it was (`recovered: true`, no
// gap) and the worker, a consumer group member, must handle every click
// once: the engine keeps positions and the group its cursor across the
// restart. On an engine that forgets either, this fails.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, openPage, restartGateway, shutdown, startGateway, startWorker } from './harness.mjs';

after(shutdown);

async function groupPending(gateway) {
  const r = await fetch(`${gateway}/v1/groups/demo-worker`);
  return r.ok ? (await r.json()).pending : null;
}

const clicked = (worker) => worker.handled.filter((h) => h.type === 'ui.clicked').map((h) => h.data.click);

test('a gateway restart loses the page nothing and the worker no click', async () => {
  const gateway = await startGateway();
  const worker = await startWorker(gateway);
  const page = await openPage(`${gateway}/?transport=websocket&minBackoffMs=200`);
  const badge = page.locator('#badge');
  const click = () => page.click('button[data-target=share]');
  let clicks = 0;

  for (const graceful of [false, true]) {
    for (let i = 0; i < 3; i++, clicks++) await click();
    await eventually(`the worker to handle ${clicks} clicks`, () => clicked(worker).length >= clicks);
    // Every delivery acked before the stop, so none may come twice.
    await eventually('no pending deliveries', async () => (await groupPending(gateway)) === 0);
    const opens = Number((await badge.getAttribute('data-opens')) ?? 0);

    await restartGateway(gateway, { graceful });
    await eventually('the page to reconnect', async () =>
      Number((await badge.getAttribute('data-opens')) ?? 0) > opens && (await badge.getAttribute('data-state')) === 'open');
    assert.equal(await badge.getAttribute('data-recovered'), 'true', `the page resumed without a gap (graceful: ${graceful})`);

    // Right after the reconnect: before a worker could have joined a new
    // group, so only a group that survived hands these out.
    for (let i = 0; i < 3; i++, clicks++) await click();
    await eventually(`the worker to handle ${clicks} clicks`, () => clicked(worker).length >= clicks, 20000);
  }
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(clicked(worker), Array.from({ length: clicks }, (_, i) => i + 1), 'every click once, in order');
  assert.ok(Number(await badge.getAttribute('data-reconnects')) >= 2, 'the page saw both restarts');
});
