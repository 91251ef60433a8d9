// Receiving: events published to a real gateway reach the handlers of the
// matching patterns, over WebSocket and over SSE, and a throwing handler
// stops nothing. Run by scripts/test after `scripts/build-client --pack`
// (`node --test tests/browser/`); see harness.mjs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TRANSPORTS, timeout, gateway, openApp, root, shutdown } from './harness.mjs';
import { connectThrough } from './inject.mjs';

after(shutdown);

for (const transport of TRANSPORTS) {
  test(`subscribe and receive over ${transport}`, { timeout }, async () => {
    const url = await gateway('main');
    const r = root('recv');
    const page = await openApp();
    const got = await page.evaluate(
      async ({ url, transport, r }) => {
        const { channel } = await t.connect({ url, transport });
        const events = t.record(channel, `${r}.*`);
        // The subscription may need a moment (SSE reopens its stream).
        await t.sleep(300);
        const receipt = await t.publish(url, { type: `${r}.placed`, data: { n: 7, total: 42 }, correlationid: 'c-1' });
        await t.until('the event', () => events.length === 1);
        const seen = { transport: channel.transport, events, receipt, lastSeq: channel.lastSeq };
        await channel.close();
        return { ...seen, closed: channel.state };
      },
      { url, transport, r },
    );
    assert.equal(got.transport, transport);
    assert.equal(got.events.length, 1);
    const [e] = got.events;
    assert.equal(e.type, `${r}.placed`);
    assert.equal(e.data.total, 42);
    assert.equal(e.correlationid, 'c-1');
    assert.equal(e.seq, got.receipt.seq);
    assert.equal(got.lastSeq, got.receipt.seq);
    assert.equal(got.closed, 'closed');
    await page.close();
  });

  test(`patterns route like the gateway, over ${transport}`, { timeout }, async () => {
    const url = await gateway('main');
    const page = await openApp();
    const got = await page.evaluate(
      async ({ url, transport, r }) => {
        const { channel } = await t.connect({ url, transport });
        const star = t.record(channel, `${r}.*`);
        const rest = t.record(channel, `${r}.>`);
        const exact = t.record(channel, `${r}.a.b`);
        let invalid;
        try {
          channel.subscribe('bad pattern', () => {});
        } catch (e) {
          invalid = e.code;
        }
        await t.sleep(300);
        await t.publish(url, [
          { type: `${r}.a`, data: { n: 1 } },
          { type: `${r}.a.b`, data: { n: 2 } },
          { type: 'other.x', data: { n: 3 } },
        ]);
        await t.until('both events at `>`', () => rest.length === 2);
        await t.sleep(100);
        await channel.close();
        return { star: t.ns(star), rest: t.ns(rest), exact: t.ns(exact), invalid };
      },
      { url, transport, r: root('pat') },
    );
    assert.equal(got.invalid, 'invalid_pattern', 'an invalid pattern throws');
    assert.deepEqual(got.star, [1], '`*` is one segment');
    assert.deepEqual(got.rest, [1, 2], '`>` is one or more segments');
    assert.deepEqual(got.exact, [2]);
    await page.close();
  });

  test(`a throwing handler does not stop the others, over ${transport}`, { timeout }, async () => {
    const url = await gateway('main');
    const page = await openApp();
    const got = await page.evaluate(
      async ({ url, transport, r }) => {
        const { channel, errors } = await t.connect({ url, transport, topics: [`${r}.x`] });
        channel.subscribe(`${r}.x`, () => {
          throw new Error('handler bug');
        });
        const events = t.record(channel, `${r}.x`);
        await t.publish(url, { type: `${r}.x`, data: { n: 1 } });
        await t.publish(url, { type: `${r}.x`, data: { n: 2 } });
        await t.until('both events at the healthy handler', () => events.length === 2);
        await channel.close();
        return { ns: t.ns(events), errors };
      },
      { url, transport, r: root('iso') },
    );
    assert.deepEqual(got.ns, [1, 2]);
    assert.deepEqual(
      got.errors.map((e) => e.code),
      ['handler_error', 'handler_error'],
    );
    assert.match(got.errors[0].cause, /handler bug/, 'what the handler threw is the cause');
    await page.close();
  });
}

test('on SSE, patterns added in one tick reopen the stream once, losing nothing and reporting no reconnect', { timeout }, async () => {
  const gw = await gateway('main');
  const r = root('reopen');
  const page = await openApp();
  // Through the SSE proxy, which counts the streams the gateway answers.
  const wire = await connectThrough(page, gw, { transport: 'sse', topics: [`${r}.a`] }, `${r}.a`);
  try {
    const before = wire.opened();
    const got = await page.evaluate(
      async ({ gw, r }) => {
        const { channel, states, events } = window.c;
        // Events on the first pattern keep coming while the stream reopens.
        const flowing = (async () => {
          for (let n = 1; n <= 10; n++) {
            await t.publish(gw, { type: `${r}.a`, data: { n } });
            await t.sleep(30);
          }
        })();
        const added = ['b', 'c', 'd'].map((p) => t.record(channel, `${r}.${p}`));
        await flowing;
        await t.sleep(300);
        await t.publish(gw, ['b', 'c', 'd'].map((p) => ({ type: `${r}.${p}`, data: { n: 1 } })));
        await t.until('the added patterns', () => added.every((a) => a.length === 1));
        await t.until('the 10 events of the first pattern', () => events.length >= 10);
        await t.sleep(200);
        const seen = states.map((s) => s.state);
        await channel.close();
        return { states: seen, a: t.ns(events), added: added.map(t.ns) };
      },
      { gw, r },
    );
    assert.equal(wire.opened() - before, 1, 'three subscribe calls in one tick: one new stream');
    assert.deepEqual(got.a, Array.from({ length: 10 }, (_, i) => i + 1), 'nothing lost or repeated across the reopen');
    assert.deepEqual(got.added, [[1], [1], [1]]);
    assert.deepEqual(got.states, [], 'not reported as a reconnect');
  } finally {
    wire.close();
    await page.close();
  }
});
