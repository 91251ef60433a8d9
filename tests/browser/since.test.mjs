// The `since` option: a channel that starts from a position kept from an
// earlier one (its `lastSeq`) gets exactly what came after it, on either
// transport. See harness.mjs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TRANSPORTS, timeout, gateway, openApp, root, shutdown } from './harness.mjs';

after(shutdown);

for (const transport of TRANSPORTS) {
  test(`a channel started with since resumes after that position, over ${transport}`, { timeout }, async () => {
    const url = await gateway('main');
    const page = await openApp();
    const got = await page.evaluate(
      async ({ url, transport, r }) => {
        const first = await t.connect({ url, transport, topics: [`${r}.>`] });
        const before = t.record(first.channel, `${r}.>`);
        await t.publish(url, t.batch(`${r}.e`, 1, 3, 10));
        await t.until('3 events', () => before.length >= 3);
        const since = first.channel.lastSeq;
        await first.channel.close();
        // Published while no channel is connected.
        await t.publish(url, t.batch(`${r}.e`, 4, 6, 10));
        const second = await t.connect({ url, transport, topics: [`${r}.>`], since });
        const after = t.record(second.channel, `${r}.>`);
        await t.until('3 more events', () => after.length >= 3);
        await t.sleep(300);
        await second.channel.close();
        return { before: t.ns(before), after: t.ns(after) };
      },
      { url, transport, r: root('since') },
    );
    assert.deepEqual(got.before, [1, 2, 3]);
    // Without `since` the second channel would start live and get none.
    assert.deepEqual(got.after, [4, 5, 6], 'what came after the position, once each, and nothing before it');
    await page.close();
  });
}
