// A frame the protocol does not allow (not JSON, not an object, an event
// without its id and seq) is reported through `onError` as
// `malformed_frame`, and the channel carries on on the same connection.
// The bad frames are slipped in front of a real gateway (inject.mjs).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TRANSPORTS, timeout, gateway, openApp, root, shutdown } from './harness.mjs';
import { connectThrough } from './inject.mjs';

after(shutdown);

/** Per transport: three frames that are each malformed in another way. */
const BAD = {
  websocket: ['{not json', '{"op":"event","event":{"type":"x"}}', '[1,2]'],
  sse: ['{not json', '{"type":"x"}', '[1,2]'],
};

for (const transport of TRANSPORTS) {
  test(`a malformed frame is reported and the channel carries on, over ${transport}`, { timeout }, async () => {
    const gw = await gateway('main');
    const r = root('bad');
    const page = await openApp();
    const wire = await connectThrough(page, gw, { transport, topics: [`${r}.x`] }, `${r}.x`);
    try {
      for (const frame of BAD[transport]) wire.inject(frame);
      const got = await page.evaluate(
        async ({ gw, r }) => {
          const { channel, states, errors, events } = window.c;
          await t.until('three errors', () => errors.length >= 3);
          await t.publish(gw, { type: `${r}.x`, data: { n: 1 } });
          await t.until('the next real event', () => events.length === 1);
          return { errors, states: states.map((s) => s.state), state: channel.state, ns: t.ns(events) };
        },
        { gw, r },
      );
      assert.deepEqual(
        got.errors.map((e) => e.code),
        ['malformed_frame', 'malformed_frame', 'malformed_frame'],
      );
      assert.deepEqual(got.ns, [1], 'the next real event is delivered');
      assert.equal(got.state, 'open');
      assert.deepEqual(got.states, [], 'on the same connection: no reconnect');
    } finally {
      wire.close();
      await page.close();
    }
  });
}
