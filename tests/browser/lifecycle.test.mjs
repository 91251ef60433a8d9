// What the package README promises beyond what browser.rs covered: every
// emit's promise settles (`closed`, `outbox_full`, `invalid_event`),
// `connect()` gives up with `connect_timeout`, the function `subscribe`
// returns stops that handler only, a gateway that lost its history says so
// with `recovered: false`, and a channel lives until `close()` even when
// the app keeps no reference to it. See harness.mjs.
import { test, after } from 'node:test';
import { createServer } from 'node:net';
import assert from 'node:assert/strict';
import { freePort, restartGateway, startAgain, stopGateway } from '../e2e/harness.mjs';
import { TRANSPORTS, timeout, gateway, openApp, root, shutdown, startOwnGateway } from './harness.mjs';

after(shutdown);

for (const transport of TRANSPORTS) {
  test(`emits waiting for a connection: outbox_full past outboxSize, closed on close(), over ${transport}`, { timeout }, async () => {
    // A gateway of its own, stopped to cut the channel off: deterministic,
    // where a slow-consumer cut depends on how fast the page reads.
    const url = await startOwnGateway();
    const page = await openApp();
    await page.evaluate(
      async ({ url, transport, r }) => {
        // Reconnects only after 30 s: the channel stays cut off for the test.
        const options = { url, transport, topics: [`${r}.kick`], outboxSize: 2, minBackoffMs: 30000, maxBackoffMs: 30000 };
        window.c = await t.connect(options);
      },
      { url, transport, r: root('pending') },
    );
    await stopGateway(url);
    const got = await page.evaluate(async (r) => {
      const { channel } = c;
      await t.until('the channel to notice the cut', () => channel.state === 'reconnecting');
      const waiting = [1, 2].map((n) => t.settle(channel.emit(`${r}.ui`, { n })));
      const third = await t.settle(channel.emit(`${r}.ui`, { n: 3 }));
      await channel.close();
      return { third, waiting: await Promise.all(waiting), state: channel.state };
    }, root('pending'));
    assert.equal(got.third.error?.code, 'outbox_full', 'the third emit does not fit in an outbox of 2');
    assert.deepEqual(
      got.waiting.map((s) => s.error?.code),
      ['closed', 'closed'],
      'close() rejects the emits still waiting',
    );
    assert.equal(got.state, 'closed');
    await page.close();
  });
}

// With no topics: an emit-only page on SSE holds a stream of its own, as a
// WebSocket with no subscription is a connection, so connect() waits for the
// gateway's welcome on either transport (on SSE it used to say `open` at
// once, with no gateway at all, and leave emits pending).
for (const transport of TRANSPORTS) {
  test(`connect() rejects with connect_timeout when no gateway answers, over ${transport}`, { timeout }, async () => {
    // A loopback port nothing listens on: every attempt is refused.
    const url = `http://127.0.0.1:${await freePort()}`;
    const page = await openApp();
    const got = await page.evaluate(
      async ({ url, transport }) => {
        const started = Date.now();
        const settled = await t.settle(t.EventChannel.connect({ url, transport, connectTimeoutMs: 1500 }));
        return { settled, ms: Date.now() - started };
      },
      { url, transport },
    );
    assert.equal(got.settled.error?.code, 'connect_timeout', JSON.stringify(got.settled));
    assert.match(got.settled.error.message, new RegExp(url.replace(/[.]/g, '\\.')));
    assert.ok(got.ms >= 1400, `not before the timeout: ${got.ms} ms`);
    await page.close();
  });
}

// setTimeout fires a delay of 2^31 ms or more at once: such a
// connectTimeoutMs used to reject with connect_timeout immediately.
test('a connectTimeoutMs past what setTimeout honours waits like 0 (no limit)', { timeout }, async () => {
  const url = `http://127.0.0.1:${await freePort()}`;
  const page = await openApp();
  const got = await page.evaluate(async (url) => {
    const connecting = t.settle(t.EventChannel.connect({ url, connectTimeoutMs: 2 ** 31 }));
    return Promise.race([connecting, t.sleep(1500).then(() => 'still waiting')]);
  }, url);
  assert.equal(got, 'still waiting', JSON.stringify(got));
  await page.close();
});

// The wasm asks for its next wake-up at its earliest deadline; one of 2^31
// ms or more (here a 30-day attemptTimeoutMs while the attempt hangs)
// used to reach setTimeout as it was, which fires it at once: the channel
// woke, found nothing due and asked again, in a loop.
test('a deadline past what setTimeout honours does not wake the channel in a loop', { timeout }, async () => {
  // Accepts connections and never answers: the WebSocket handshake hangs.
  const held = [];
  const server = createServer((s) => held.push(s));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  const page = await openApp();
  const calls = await page.evaluate(async (url) => {
    const real = window.setTimeout;
    let calls = 0;
    window.setTimeout = (...a) => (calls++, real(...a));
    t.EventChannel.connect({ url, transport: 'websocket', attemptTimeoutMs: 30 * 86_400_000, connectTimeoutMs: 0 });
    await new Promise((r) => real(r, 1000));
    return calls;
  }, url);
  assert.ok(calls < 20, `setTimeout called ${calls} times in 1 s`);
  await page.close();
  held.forEach((s) => s.destroy());
  server.close();
});

test('a channel without topics over sse holds a stream: it emits, notices the gateway go, reopens, then subscribes', { timeout }, async () => {
  const url = await startOwnGateway();
  const r = root('bare');
  const page = await openApp();
  const first = await page.evaluate(
    async ({ url, r }) => {
      window.c = await t.connect({ url, transport: 'sse', minBackoffMs: 200, maxBackoffMs: 1000 });
      const { channel } = window.c;
      return { state: channel.state, emitted: await t.settle(channel.emit(`${r}.ui`, { n: 1 })) };
    },
    { url, r },
  );
  assert.equal(first.state, 'open');
  assert.ok(first.emitted.value?.seq, JSON.stringify(first.emitted));
  await stopGateway(url);
  await page.evaluate(() =>
    t.until('the channel to notice the gateway is gone', () => window.c.states.some((s) => s.state === 'reconnecting')),
  );
  await startAgain(url);
  const got = await page.evaluate(
    async ({ url, r }) => {
      const { channel, states } = window.c;
      await t.until('the channel to reopen', () => states.at(-1).state === 'open');
      const emitted = await t.settle(channel.emit(`${r}.ui`, { n: 2 }));
      // The first subscription reopens the stream with its topic.
      const events = t.record(channel, `${r}.x`);
      await t.sleep(300);
      await t.publish(url, { type: `${r}.x`, data: { n: 3 } });
      await t.until('the event on the reopened stream', () => events.length === 1);
      const seen = states.map((s) => s.state);
      await channel.close();
      return { emitted, events: t.ns(events), seen };
    },
    { url, r },
  );
  assert.ok(got.emitted.value?.seq, JSON.stringify(got.emitted));
  assert.deepEqual(got.events, [3]);
  // Then `open` again (the subscribe's reopen may say `recovered: false`:
  // this memory gateway lost its history, and the channel's position with it).
  assert.equal(got.seen[0], 'reconnecting', `${got.seen}`);
  assert.ok(got.seen.includes('open'), `${got.seen}`);
  await page.close();
});

test('an emit whose data cannot be serialized is refused with invalid_event', { timeout }, async () => {
  const url = await gateway('main');
  const page = await openApp();
  const got = await page.evaluate(
    async ({ url, r }) => {
      const { channel } = await t.connect({ url, transport: 'websocket' });
      const cyclic = { n: 1 };
      cyclic.self = cyclic;
      const refused = await t.settle(channel.emit(`${r}.x`, cyclic));
      const next = await t.settle(channel.emit(`${r}.x`, { n: 2 }));
      await channel.close();
      return { refused, next };
    },
    { url, r: root('cycle') },
  );
  assert.equal(got.refused.error?.code, 'invalid_event');
  assert.ok(got.next.value?.seq, 'the channel carries on');
  await page.close();
});

for (const transport of TRANSPORTS) {
  test(`the function subscribe returns stops that handler only, over ${transport}`, { timeout }, async () => {
    const url = await gateway('main');
    const page = await openApp();
    const got = await page.evaluate(
      async ({ url, transport, r }) => {
        const { channel } = await t.connect({ url, transport, topics: [`${r}.x`] });
        const stopped = [];
        const off = channel.subscribe(`${r}.x`, (e) => stopped.push(e));
        const kept = t.record(channel, `${r}.x`);
        await t.sleep(300);
        await t.publish(url, { type: `${r}.x`, data: { n: 1 } });
        await t.until('the first event at both', () => stopped.length === 1 && kept.length === 1);
        off();
        off(); // a second call changes nothing
        await t.publish(url, { type: `${r}.x`, data: { n: 2 } });
        await t.until('the second event at the kept handler', () => kept.length === 2);
        await t.sleep(200);
        await channel.close();
        return { stopped: t.ns(stopped), kept: t.ns(kept) };
      },
      { url, transport, r: root('off') },
    );
    assert.deepEqual(got.stopped, [1]);
    assert.deepEqual(got.kept, [1, 2]);
    await page.close();
  });

  test(`a gateway restarted without its history reopens with recovered: false, over ${transport}`, { timeout }, async () => {
    // A memory-engine gateway of this test's own: a restart loses every event.
    const url = await startOwnGateway();
    const r = root('lost');
    const page = await openApp();
    await page.evaluate(
      async ({ url, transport, r }) => {
        window.c = await t.connect({ url, transport, topics: [`${r}.>`], minBackoffMs: 200, maxBackoffMs: 1000 });
        window.c.events = t.record(window.c.channel, `${r}.>`);
        await t.sleep(300);
        await t.publish(url, { type: `${r}.x`, data: { n: 1 } });
        await t.until('the event', () => window.c.events.length === 1);
      },
      { url, transport, r },
    );
    await restartGateway(url);
    const got = await page.evaluate(
      async ({ url, r }) => {
        const { channel, states, events } = window.c;
        await t.until('the channel to reopen', () => states.some((s) => s.state === 'open'));
        await t.publish(url, { type: `${r}.x`, data: { n: 2 } });
        await t.until('an event from the new gateway', () => events.length === 2);
        const seen = states.slice();
        await channel.close();
        return { states: seen, ns: t.ns(events) };
      },
      { url, r },
    );
    const open = got.states.find((s) => s.state === 'open');
    assert.equal(open.info.recovered, false, 'events may have been missed: the app is told');
    assert.deepEqual(got.ns, [1, 2], 'and the channel carries on from the new gateway');
    await page.close();
  });
}

for (const transport of TRANSPORTS) {
  test(`a channel the app no longer references lives on until close(), over ${transport}`, { timeout }, async () => {
    const url = await gateway('main');
    const r = root('kept');
    const page = await openApp();
    await page.evaluate(
      async ({ url, transport, r }) => {
        window.got = [];
        // Nothing keeps the EventChannel object: only its handler is reachable.
        await (async () => {
          const channel = await t.EventChannel.connect({ url, transport, topics: [`${r}.x`] });
          channel.subscribe(`${r}.x`, (e) => window.got.push(e.data.n));
        })();
      },
      { url, transport, r },
    );
    // Collect garbage (twice, so finalizers that ran can be collected too).
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('HeapProfiler.collectGarbage');
    await page.evaluate(() => t.sleep(100));
    await cdp.send('HeapProfiler.collectGarbage');
    const got = await page.evaluate(
      async ({ url, r }) => {
        await t.sleep(300);
        await t.publish(url, { type: `${r}.x`, data: { n: 1 } });
        await t.until('the event at the handler', () => window.got.length === 1);
        return window.got;
      },
      { url, r },
    );
    assert.deepEqual(got, [1]);
    await page.close();
  });
}
