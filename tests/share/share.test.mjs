// `share: true` in headless Chromium: several tabs of one browser context
// against a real gateway, one connection between them, and failover when
// the leading tab closes or is frozen. Run with `node --test tests/share/`
// after `scripts/build-client` (the tests load channel-wasm/pkg).
import { test } from 'node:test';
import { createHmac } from 'node:crypto';
import assert from 'node:assert/strict';
import { startGateway, eventually } from '../e2e/harness.mjs';
import { LIMIT, testPage, context, tab, connections, received, publishMany, exactlyOnce, backgroundTimers } from './setup.mjs';

const page = await testPage();

/** Waits for a tab among `pages` to lead; answers it and when it took over (its clock). */
async function newLeader(pages) {
  return eventually('a new leader', async () => {
    for (const p of pages) {
      const at = await p.evaluate(() => ch.state == 'open' && ledAt);
      if (at) return { page: p, at };
    }
  });
}

test('five tabs share one connection; each gets its patterns exactly once', { timeout: LIMIT }, async () => {
  const gw = await startGateway('--cors-origin', '*');
  const ctx = await context();
  const patterns = [['one.*'], ['one.*'], ['two.*'], ['two.>'], ['one.*', 'two.*']];
  const tabs = [];
  for (const p of patterns) tabs.push(await tab(ctx, page.base, gw, { share: true }, p));
  const roles = await Promise.all(tabs.map((t) => t.evaluate(() => ch.shared)));
  assert.equal(roles.filter((r) => r == 'leader').length, 1, `one leader: ${roles}`);
  assert.equal(roles.filter((r) => r == 'follower').length, 4, `four followers: ${roles}`);
  // Leader or follower, what the app holds is an EventChannel.
  assert.deepEqual(await Promise.all(tabs.map((t) => t.evaluate(() => ch instanceof EventChannel))), [true, true, true, true, true]);
  // The union is subscribed once the followers' patterns reached the leader.
  await eventually('one connection', async () => (await connections(gw)) == 1);
  await new Promise((r) => setTimeout(r, 500));
  await publishMany(gw, 'one.x', 'one', 40);
  await publishMany(gw, 'two.y', 'two', 40);
  const want = [40, 40, 40, 40, 80];
  const got = await received(tabs, 40, 'every tab to receive its events');
  await eventually('the fifth tab', async () => (await tabs[4].evaluate(() => got.length)) >= 80);
  got[4] = await tabs[4].evaluate(() => got);
  await new Promise((r) => setTimeout(r, 500));
  for (let i = 0; i < 5; i++) {
    const ids = await tabs[i].evaluate(() => got);
    assert.equal(ids.length, want[i], `tab ${i} got ${ids.length} events`);
    if (patterns[i].some((p) => p.startsWith('one'))) exactlyOnce(assert, ids, 'one', 40, `tab ${i}`);
    if (patterns[i].some((p) => p.startsWith('two'))) exactlyOnce(assert, ids, 'two', 40, `tab ${i}`);
  }
  assert.equal(await connections(gw), 1, 'still one connection');
  // Every tab's emit goes through the leader and settles in that tab.
  const receipts = await Promise.all(tabs.map((t, i) => t.evaluate((i) => ch.emit('one.e', { i }, { id: `e-${i}` }), i)));
  assert.deepEqual(receipts.map((r) => [r.id, r.duplicate, typeof r.seq]), tabs.map((_, i) => [`e-${i}`, false, 'string']));
  const bad = await tabs[1].evaluate(() => ch.emit('one.e', ((a) => (a.a = a))({})).catch((e) => e.code));
  assert.equal(bad, 'invalid_event');
  await ctx.close();
});

/** 500 events published while `disrupt(leader)` happens; every other tab must get each exactly once. */
async function failover(disrupt, transport = 'auto', init) {
  const gw = await startGateway('--cors-origin', '*');
  const ctx = await context();
  const tabs = [];
  for (let i = 0; i < 3; i++) tabs.push(await tab(ctx, page.base, gw, { share: true, transport }, ['f.*'], init));
  const leader = tabs.find((t) => t.shared == 'leader');
  const others = tabs.filter((t) => t != leader);
  await eventually('one connection', async () => (await connections(gw)) == 1);
  if (init) {
    // Quiet for 4 s, with only the heartbeats and pings to go by: no
    // follower may take over from a live leader.
    await new Promise((r) => setTimeout(r, 4000));
    assert.deepEqual(await Promise.all(tabs.map((t) => t.evaluate(() => ch.shared))), tabs.map((t) => t.shared));
  }
  const flowing = publishMany(gw, 'f.x', 'f', 500, 4);
  await eventually('events flowing', async () => (await others[0].evaluate(() => got.length)) >= 100);
  const t0 = Date.now();
  await disrupt(leader, ctx);
  const next = await newLeader(others);
  await flowing;
  const got = await received(others, 500, 'every event in the other tabs');
  await new Promise((r) => setTimeout(r, 500));
  for (const [i, t] of others.entries()) exactlyOnce(assert, await t.evaluate(() => got), 'f', 500, `tab ${i}`);
  // What a user sees: the longest pause between two events in a tab (the
  // events come every ~5 ms).
  const pauses = await Promise.all(others.map((t) => t.evaluate(() => Math.max(...at.slice(1).map((x, i) => x - at[i])))));
  const pause = Math.max(...pauses);
  assert.equal(got.length, 2);
  return { ms: `${next.at - t0} ms to a new leader, longest pause in delivery ${pause} ms`, ctx, leader, next: next.page, gw };
}

for (const transport of ['websocket', 'sse']) {
  test(`the leader closes while 500 events flow: another tab takes over, nothing lost or doubled (${transport})`, { timeout: LIMIT }, async () => {
    const { ms, ctx, gw } = await failover((leader) => leader.close(), transport);
    console.log(`failover after the leader closed (${transport}): ${ms}`);
    await eventually('one connection after failover', async () => (await connections(gw)) == 1);
    await ctx.close();
  });
}

/** Freezes the leader while 500 events flow (`init` runs in every tab
 * first), then wakes it: it must step down and let its connection go.
 * Answers the figures. */
async function frozenLeader(init) {
  let cdp;
  const { ms, ctx, leader, next, gw } = await failover(
    async (leader, ctx) => {
      cdp = await ctx.newCDPSession(leader);
      await cdp.send('Page.setWebLifecycleState', { state: 'frozen' });
      // Headless Chromium 156 accepts the freeze but keeps running the page's
      // timers and handlers (seen here: no `freeze` event, timers advance).
      // The debugger's pause stops the page's JavaScript the same way a
      // freeze does: no task runs, the lock stays held.
      await cdp.send('Debugger.enable');
      await cdp.send('Debugger.pause');
    },
    'auto',
    init,
  );
  await cdp.send('Debugger.resume');
  await cdp.send('Page.setWebLifecycleState', { state: 'active' });
  await eventually('the old leader to step down', async () => (await leader.evaluate(() => ch.shared)) == 'follower');
  assert.equal(await next.evaluate(() => ch.shared), 'leader');
  // The old leader let its connection go when it stepped down.
  await eventually('one connection after the old leader woke', async () => (await connections(gw)) == 1);
  await ctx.close();
  return ms;
}

test('a frozen leader is replaced; on waking it steps down', { timeout: LIMIT }, async () => {
  console.log(`failover after the leader froze: ${await frozenLeader()}`);
});

test('with every tab\'s timers at once a second (background tabs), a live leader keeps its place and a frozen one is replaced', { timeout: LIMIT }, async () => {
  console.log(`failover after the leader froze, timers throttled: ${await frozenLeader(backgroundTimers)}`);
});

/** An HS256 JWT for `sub`, with the right to subscribe to its own tree. */
function jwt(secret, sub, seconds) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, exp: Math.floor(Date.now() / 1000) + seconds, eventwire: { subscribe: ['user.{sub}.>'] } })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

test('tabs of different identities never share; one identity shares across different tokens', { timeout: LIMIT }, async () => {
  const secret = 'share-test-secret-of-at-least-32-bytes';
  const key = 'share-test-api-key';
  const gw = await startGateway('--cors-origin', '*', '--jwt-secret', secret, '--api-key', key);
  const ctx = await context();
  // Two tokens of alice (another expiry: another string), one of bob.
  const tabs = [
    await tab(ctx, page.base, gw, { share: true, token: jwt(secret, 'alice', 600) }, ['user.alice.>']),
    await tab(ctx, page.base, gw, { share: true, token: jwt(secret, 'alice', 900) }, ['user.alice.>']),
    await tab(ctx, page.base, gw, { share: true, token: jwt(secret, 'bob', 600) }, ['user.bob.>']),
  ];
  assert.deepEqual(tabs.map((t) => t.shared).sort(), ['follower', 'leader', 'leader']);
  assert.equal(tabs[2].shared, 'leader', 'bob leads his own');
  await eventually('two connections', async () => (await connections(gw)) == 2);
  for (const who of ['alice', 'bob']) {
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${gw}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ type: `user.${who}.note`, id: `${who}-${i}`, data: { i } }),
      });
      assert.ok(r.ok, await r.text());
    }
  }
  const got = await received(tabs, 10, 'each tab its own events');
  await new Promise((r) => setTimeout(r, 500));
  exactlyOnce(assert, got[0], 'alice', 10, 'alice 1');
  exactlyOnce(assert, got[1], 'alice', 10, 'alice 2');
  exactlyOnce(assert, got[2], 'bob', 10, 'bob');
  for (const [i, t] of tabs.entries()) assert.equal((await t.evaluate(() => got)).length, 10, `tab ${i}: nothing of the other`);
  await ctx.close();
});

test('without navigator.locks each tab keeps its own connection', { timeout: LIMIT }, async () => {
  const gw = await startGateway('--cors-origin', '*');
  const ctx = await context(() => Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined }));
  const tabs = [await tab(ctx, page.base, gw, { share: true }, ['n.*']), await tab(ctx, page.base, gw, { share: true }, ['n.*'])];
  assert.deepEqual(tabs.map((t) => t.shared), [false, false]);
  await eventually('two connections', async () => (await connections(gw)) == 2);
  await publishMany(gw, 'n.x', 'n', 20);
  for (const [i, ids] of (await received(tabs, 20, 'the events')).entries()) exactlyOnce(assert, ids, 'n', 20, `tab ${i}`);
  await ctx.close();
});
