// Emitting: receipts from the gateway, refusals with codes, the outbox
// flushed in order after a cut, and `auto` falling back to SSE when the
// gateway refuses WebSocket. See harness.mjs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TRANSPORTS, timeout, gateway, openApp, root, shutdown } from './harness.mjs';

after(shutdown);

for (const transport of TRANSPORTS) {
  test(`emit resolves with the gateway's receipt, over ${transport}`, { timeout }, async () => {
    const url = await gateway('main');
    const r = root('emit');
    const page = await openApp();
    const got = await page.evaluate(
      async ({ url, transport, r }) => {
        const { channel } = await t.connect({ url, transport, topics: [`${r}.>`] });
        const events = t.record(channel, `${r}.>`);
        const receipt = await channel.emit(`${r}.clicked`, { target: 'buy', n: 1 }, { correlationid: 'corr-9' });
        await t.until('our own event back', () => events.length === 1);
        // A bad type and an oversized payload are refused with codes, and
        // the channel carries on.
        const badType = await t.settle(channel.emit('not a topic', null));
        const tooLarge = await t.settle(channel.emit(`${r}.big`, 'x'.repeat(70_000)));
        const after = await t.settle(channel.emit(`${r}.after`, { n: 2 }));
        await t.until('the event after the refusals', () => events.length === 2);
        await channel.close();
        return { receipt, events, badType, tooLarge, after };
      },
      { url, transport, r },
    );
    const { receipt, events } = got;
    assert.ok(typeof receipt.id === 'string' && receipt.id.length > 0, 'the receipt has the event id');
    assert.ok(typeof receipt.seq === 'string' && receipt.seq.length > 0, 'the receipt has a seq');
    assert.equal(receipt.duplicate, false);
    assert.equal(events[0].id, receipt.id);
    assert.equal(events[0].seq, receipt.seq);
    assert.equal(events[0].type, `${r}.clicked`);
    assert.equal(events[0].correlationid, 'corr-9');
    assert.equal(events[0].data.target, 'buy');
    assert.equal(got.badType.error?.code, 'invalid_topic');
    assert.equal(got.tooLarge.error?.code, 'event_too_large');
    assert.ok(got.after.value?.seq, `the emit after the refusals is accepted: ${JSON.stringify(got.after)}`);
    assert.deepEqual(
      events.map((e) => e.type),
      [`${r}.clicked`, `${r}.after`],
    );
    await page.close();
  });

  test(`emits made while disconnected are flushed in order, over ${transport}`, { timeout }, async () => {
    const url = await gateway('tight');
    const page = await openApp();
    const got = await page.evaluate(
      async ({ url, transport, r }) => {
        // A fixed 1 s before each reconnect: time enough to see the channel
        // cut off and emit, even on a busy machine.
        const backoff = { minBackoffMs: 1000, maxBackoffMs: 1000 };
        const watcher = await t.connect({ url, transport: 'sse', topics: [`${r}.ui.>`], ...backoff });
        const seen = t.record(watcher.channel, `${r}.ui.>`);
        const { channel, states } = await t.connect({ url, transport, topics: [`${r}.kick`], ...backoff });
        await t.sleep(200);
        // Get the channel cut off (a burst far over the 8 KiB outbox), then
        // emit while it is reconnecting.
        await t.publish(url, t.batch(`${r}.kick`, 1, 100, 200));
        await t.until('the channel to notice the cut', () => channel.state === 'reconnecting');
        const stateWhenEmitting = channel.state;
        const emits = [];
        for (let n = 1; n <= 20; n++) emits.push(t.settle(channel.emit(`${r}.ui.clicked`, { n })));
        const settled = await Promise.all(emits);
        await t.until('the 20 emits at the watcher', () => seen.length >= 20);
        await t.sleep(300);
        await channel.close();
        await watcher.channel.close();
        return { stateWhenEmitting, settled, seen: t.ns(seen), states: states.map((s) => s.state) };
      },
      { url, transport, r: root('outbox') },
    );
    assert.equal(got.stateWhenEmitting, 'reconnecting');
    assert.deepEqual(
      got.settled.filter((s) => !s.value?.seq),
      [],
      'every queued emit is accepted',
    );
    assert.deepEqual(
      got.seen,
      Array.from({ length: 20 }, (_, i) => i + 1),
      'exactly once, in order',
    );
    assert.ok(got.states.includes('open'), `the channel reopened: ${got.states}`);
    await page.close();
  });
}

for (const transport of TRANSPORTS) {
  test(`an emit repeated with the same id is a duplicate, delivered once, over ${transport}`, { timeout }, async () => {
    const url = await gateway('main');
    const page = await openApp();
    const got = await page.evaluate(
      async ({ url, transport, r }) => {
        const { channel } = await t.connect({ url, transport, topics: [`${r}.>`] });
        const events = t.record(channel, `${r}.>`);
        // An app retrying an emit whose answer it never saw, with the same id.
        const id = `order-${r}`;
        const first = await channel.emit(`${r}.placed`, { n: 1 }, { id });
        const retry = await channel.emit(`${r}.placed`, { n: 1 }, { id });
        await t.until('the event', () => events.length >= 1);
        await t.sleep(500);
        await channel.close();
        return { id, first, retry, ids: events.map((e) => e.id) };
      },
      { url, transport, r: root('dup') },
    );
    assert.equal(got.first.id, got.id, 'the id given is the event id');
    assert.equal(got.first.duplicate, false);
    assert.equal(got.retry.duplicate, true);
    assert.equal(got.retry.seq, got.first.seq, 'the retry is answered with the original seq');
    assert.deepEqual(got.ids, [got.id], 'delivered once');
    await page.close();
  });
}

test('auto falls back to SSE when WebSocket is refused', { timeout }, async () => {
  const url = await gateway('noWebSocket');
  const page = await openApp();
  const got = await page.evaluate(
    async ({ url, r }) => {
      const { channel } = await t.connect({ url, transport: 'auto', topics: [`${r}.x`] });
      const events = t.record(channel, `${r}.x`);
      await t.sleep(300);
      await t.publish(url, { type: `${r}.x`, data: { n: 1 } });
      await t.until('the event over SSE', () => events.length === 1);
      const emitted = await t.settle(channel.emit(`${r}.x`, { n: 2 }));
      await t.until('the emitted event back', () => events.length === 2);
      const transport = channel.transport;
      await channel.close();
      return { transport, emitted, ns: t.ns(events) };
    },
    { url, r: root('fallback') },
  );
  assert.equal(got.transport, 'sse');
  assert.equal(typeof got.emitted.value?.seq, 'string', 'emit works over the fallback too');
  assert.deepEqual(got.ns, [1, 2]);
  await page.close();
});
