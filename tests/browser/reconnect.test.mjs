// Reconnecting: a connection the gateway cuts (slow consumer) resumes with
// nothing lost or repeated, the token function is asked again on every
// connect, and a token that expires mid-session is replaced with nothing
// lost. See harness.mjs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { restartGateway } from '../e2e/harness.mjs';
import { JWT_SECRET, TRANSPORTS, timeout, gateway, openApp, root, shutdown, startOwnGateway } from './harness.mjs';
import { connectThrough } from './inject.mjs';

after(shutdown);

/** Reconnect quickly, so a cut costs the test little time. */
const backoff = { minBackoffMs: 200, maxBackoffMs: 1000 };

const upTo = (n) => Array.from({ length: n }, (_, i) => i + 1);

for (const transport of TRANSPORTS) {
  test(`a connection cut by the gateway resumes without loss or duplicates, over ${transport}`, { timeout }, async () => {
    const url = await gateway('tight');
    const page = await openApp();
    const got = await page.evaluate(
      async ({ url, transport, r }) => {
        // A fixed 1 s before each reconnect: time to publish while cut off.
        const options = { url, transport, topics: [`${r}.>`], minBackoffMs: 1000, maxBackoffMs: 1000 };
        const { channel, states, errors } = await t.connect(options);
        const events = t.record(channel, `${r}.>`);
        await t.sleep(200);
        // 100 events, far over the 8 KiB outbox: the gateway cuts the
        // connection as a slow consumer, part way through.
        await t.publish(url, t.batch(`${r}.e`, 1, 100, 200));
        await t.until('the channel to notice the cut', () => channel.state === 'reconnecting');
        // 100 more while it is cut off: only a resume can bring them.
        await t.publish(url, t.batch(`${r}.e`, 101, 200, 200));
        await t.until('200 events', () => events.length >= 200, 30000).catch((e) => {
          throw new Error(`${e.message}: got ${events.length}, states ${JSON.stringify(states)}, errors ${JSON.stringify(errors)}`);
        });
        await t.sleep(300);
        const before = states.slice();
        await channel.close();
        return { ns: t.ns(events), states: before };
      },
      { url, transport, r: root('resume') },
    );
    assert.deepEqual(got.ns, upTo(200), 'every event once, in order');
    const names = got.states.map((s) => s.state);
    assert.ok(names.includes('reconnecting'), `the gateway did cut the connection: ${names}`);
    const last = got.states.at(-1);
    assert.equal(last.state, 'open');
    assert.equal(last.info.recovered, true, 'the reopened channel says nothing was missed');
    await page.close();
  });

  test(`the token function is called again on every connect, over ${transport}`, { timeout }, async () => {
    // A gateway of its own, restarted to cut the connection: a slow-consumer
    // cut depends on the page reading slower than the gateway writes, which
    // a fast run does not always do.
    const url = await startOwnGateway();
    const page = await openApp();
    const callsWhenOpen = await page.evaluate(
      async ({ url, transport, r, backoff }) => {
        window.calls = 0;
        // An async token source: a promise of a string.
        const token = () => Promise.resolve(`token-${++calls}`);
        window.c = await t.connect({ url, transport, topics: [`${r}.>`], token, ...backoff });
        return calls;
      },
      { url, transport, r: root('token'), backoff },
    );
    assert.equal(callsWhenOpen, 1);
    await restartGateway(url);
    const calls = await page.evaluate(async () => {
      await t.until('a second token', () => calls >= 2);
      await t.until('the channel to reopen', () => c.channel.state === 'open');
      await c.channel.close();
      return calls;
    });
    assert.ok(calls >= 2, `asked again on reconnect: ${calls} calls`);
    await page.close();
  });
}

/** An HS256 JWT for the `auth` gateway, as an app's token endpoint would
 * mint one: `sub` may use `user.<sub>.>`; it expires `expIn` s from now. */
function mint(sub, expIn) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = part({ alg: 'HS256', typ: 'JWT' });
  const body = part({
    sub,
    exp: Math.floor(Date.now() / 1000) + expIn,
    eventwire: { subscribe: ['user.{sub}.>'], publish: ['user.{sub}.>'] },
  });
  const sig = createHmac('sha256', JWT_SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

for (const transport of TRANSPORTS) {
  test(`an expiring token is refreshed and nothing is lost, over ${transport}`, { timeout }, async () => {
    const url = await gateway('auth');
    const sub = `u${Math.floor(Math.random() * 1e9)}`;
    const page = await openApp();
    const got = await page.evaluate(
      async ({ url, transport, sub, short, long, backoff }) => {
        let calls = 0;
        // The first token lives 2 s; later ones an hour.
        const token = async () => (++calls === 1 ? short : long);
        const { channel } = await t.connect({ url, transport, topics: [`user.${sub}.>`], token, ...backoff });
        const events = t.record(channel, `user.${sub}.>`);
        // Emit across the expiry: every one is accepted and delivered once.
        const settled = [];
        for (let n = 1; n <= 8; n++) {
          settled.push(await t.settle(channel.emit(`user.${sub}.note`, { n })));
          await t.sleep(500);
        }
        await t.until('all 8 events', () => events.length >= 8);
        await t.sleep(300);
        const state = channel.state;
        await channel.close();
        return { settled, ns: t.ns(events), calls, state };
      },
      { url, transport, sub, short: mint(sub, 2), long: mint(sub, 3600), backoff },
    );
    assert.deepEqual(
      got.settled.filter((s) => !s.value?.seq),
      [],
      'every emit across the expiry is accepted',
    );
    assert.deepEqual(got.ns, upTo(8));
    assert.ok(got.calls >= 2, `the token function was asked again: ${got.calls} calls`);
    assert.equal(got.state, 'open');
    await page.close();
  });
}

for (const transport of TRANSPORTS) {
  test(`a connection gone silent is taken for dead and resumed, over ${transport}`, { timeout }, async () => {
    // Heartbeats every second: silence for two of them means a dead connection.
    const gw = await gateway('quickHeartbeat');
    const r = root('silent');
    const page = await openApp();
    const wire = await connectThrough(page, gw, { transport, topics: [`${r}.>`], ...backoff }, `${r}.>`);
    try {
      // The connection stays open, but nothing more comes through it: what
      // a dead peer behind a proxy or a sleeping laptop's socket looks like.
      wire.silence();
      const got = await page.evaluate(
        async ({ gw, r }) => {
          const { channel, states, events } = window.c;
          await t.publish(gw, t.batch(`${r}.e`, 1, 3));
          await t.until('the channel to give up on the silent connection', () => channel.state === 'reconnecting');
          await t.until('the 3 events, through a new connection', () => events.length >= 3);
          await t.sleep(300);
          const seen = states.slice();
          await channel.close();
          return { states: seen, ns: t.ns(events) };
        },
        { gw, r },
      );
      assert.deepEqual(got.ns, [1, 2, 3], 'what was published into the silence arrives once, in order');
      const last = got.states.at(-1);
      assert.equal(last.state, 'open');
      assert.equal(last.info.recovered, true);
    } finally {
      wire.close();
      await page.close();
    }
  });
}
