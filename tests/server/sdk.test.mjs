// eventwire/server against a real gateway (issue 18): publish (client-made
// ids, dedupe, batching), two competing consumers, a throwing handler
// redelivered, a long handler extended, graceful stop, and verifyWebhook
// against both the reference standardwebhooks package and the gateway's
// own signed deliveries. Imports the built package (scripts/build-client).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { repo, startGateway, shutdown, eventually } from '../e2e/harness.mjs';

const { Eventwire, verifyWebhook, parseDuration } = await import(
  pathToFileURL(path.join(repo, 'channel-wasm/pkg/server.js')).href
);
let gateway;

before(async () => {
  gateway = await startGateway('--engine', 'memory');
});
after(shutdown);

const group = async (name, spec) => {
  const r = await fetch(`${gateway}/v1/groups/${name}`);
  return r.json();
};

test('publish: receipts, client-made ids deduplicated, batches when calls outrun the round trip', async () => {
  let posts = 0;
  const ew = new Eventwire({
    url: gateway,
    source: 'sdk-test',
    fetch: (url, init) => {
      if (init.method === 'POST' && url.endsWith('/v1/events')) posts++;
      return fetch(url, init);
    },
  });
  const first = await ew.publish('sdk.pub', { n: 0 });
  assert.equal(first.duplicate, false);
  assert.match(first.id, /^[0-9a-f-]{36}$/, 'a UUID made by the client');
  assert.ok(first.seq);
  const again = await ew.publish('sdk.pub', { n: 0 }, { id: first.id });
  assert.equal(again.duplicate, true, 'the same id is the same event');
  assert.equal(again.seq, first.seq);
  posts = 0;
  const receipts = await Promise.all(Array.from({ length: 500 }, (_, n) => ew.publish('sdk.pub', { n })));
  assert.equal(new Set(receipts.map((r) => r.seq)).size, 500);
  assert.ok(posts <= 10, `500 publishes in ${posts} POSTs`);
  // One bad event does not sink the others sent with it.
  const mixed = await Promise.allSettled([ew.publish('sdk.ok', 1), ew.publish('bad topic', 2), ew.publish('sdk.ok', 3)]);
  assert.deepEqual(mixed.map((m) => m.status), ['fulfilled', 'rejected', 'fulfilled']);
  assert.equal(mixed[1].reason.code, 'invalid_topic');
  const history = await (await fetch(`${gateway}/v1/events?topic=sdk.pub&limit=1000`)).json();
  assert.equal(history.events.length, 501);
  assert.equal(history.events[0].source, 'sdk-test');
  await ew.close();
});

test('two competing consumers: each event handled once, both work', async () => {
  const ew = new Eventwire({ url: gateway });
  const seen = new Map();
  const handler = (who) => async (event) => {
    seen.set(event.id, [...(seen.get(event.id) ?? []), who]);
    await new Promise((r) => setTimeout(r, 2));
  };
  const spec = { topics: ['comp.>'], start: 'new' };
  const a = ew.consume('comp', handler('a'), { concurrency: 4, create: spec, wait: '1s' });
  const b = ew.consume('comp', handler('b'), { concurrency: 4, create: spec, wait: '1s' });
  await eventually('the group', async () => (await fetch(`${gateway}/v1/groups/comp`)).ok);
  const ids = [];
  for (let i = 0; i < 300; i++) ids.push((await ew.publish(`comp.e${i % 3}`, { i })).id);
  await eventually('every event handled', () => ids.every((id) => seen.has(id)), 60000);
  await Promise.all([a.stop(), b.stop()]);
  const twice = [...seen.values()].filter((w) => w.length > 1);
  assert.deepEqual(twice, [], 'no event handled twice');
  const by = (w) => [...seen.values()].filter((v) => v[0] === w).length;
  assert.ok(by('a') > 0 && by('b') > 0, `a: ${by('a')}, b: ${by('b')}`);
  const g = await group('comp');
  assert.equal(g.pending, 0);
  assert.equal(g.acked, 300);
});

test('a handler that throws: nacked, redelivered, then acked', async () => {
  const ew = new Eventwire({ url: gateway });
  const attempts = [];
  const c = ew.consume(
    'flaky-handler',
    async (event, { attempt }) => {
      attempts.push(attempt);
      if (attempt === 1) throw new Error('first time fails');
    },
    { create: { topics: ['throw.it'], backoff: ['50ms'] }, wait: '1s' },
  );
  await eventually('the group', async () => (await fetch(`${gateway}/v1/groups/flaky-handler`)).ok);
  await ew.publish('throw.it', { x: 1 });
  await eventually('the redelivery handled', () => attempts.length === 2);
  await c.stop();
  assert.deepEqual(attempts, [1, 2]);
  const g = await group('flaky-handler');
  assert.equal(g.acked, 1);
  assert.equal(g.redelivered, 1);
  assert.equal(g.pending, 0);
});

test('a handler longer than ack_wait is extended, not redelivered', async () => {
  const ew = new Eventwire({ url: gateway });
  let calls = 0;
  const c = ew.consume(
    'slow',
    async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 2500));
    },
    { create: { topics: ['slow.job'], ack_wait: '1s' }, wait: '1s', concurrency: 2 },
  );
  await eventually('the group', async () => (await fetch(`${gateway}/v1/groups/slow`)).ok);
  await ew.publish('slow.job', {});
  await eventually('acked', async () => (await group('slow')).acked === 1, 20000);
  await c.stop();
  assert.equal(calls, 1, 'never handed to a second handler');
  assert.equal((await group('slow')).redelivered, 0);
});

test('graceful stop: running handlers finish and are acked, nothing new is taken', async () => {
  const ew = new Eventwire({ url: gateway });
  const started = [];
  const finished = [];
  const c = ew.consume(
    'graceful',
    async (event) => {
      started.push(event.id);
      await new Promise((r) => setTimeout(r, 400));
      finished.push(event.id);
    },
    { create: { topics: ['grace.*'] }, concurrency: 3, wait: '5s' },
  );
  await eventually('the group', async () => (await fetch(`${gateway}/v1/groups/graceful`)).ok);
  for (let i = 0; i < 3; i++) await ew.publish('grace.job', { i });
  await eventually('three running', () => started.length === 3);
  await c.stop();
  assert.equal(finished.length, 3, 'stop waited for the running handlers');
  const g = await group('graceful');
  assert.equal(g.acked, 3);
  assert.equal(g.pending, 0);
  // After stop, a new event stays in the group for the next worker.
  await ew.publish('grace.job', { i: 3 });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(started.length, 3);
  assert.equal((await group('graceful')).lag, 1);
  await c.done;
});

test('verifyWebhook: the reference signer, tampering, stale timestamps, and the gateway itself', async () => {
  const secret = 'whsec_' + Buffer.from('sdk-verify-test-key-of-32-bytes!').toString('base64');
  const body = JSON.stringify({ type: 'x.y', id: 'm1', data: { n: 1 } });
  const now = new Date();
  const sig = new Webhook(secret).sign('m1', now, body);
  const headers = { 'webhook-id': 'm1', 'webhook-timestamp': String(Math.floor(now / 1000)), 'webhook-signature': sig };
  assert.deepEqual(verifyWebhook(body, headers, secret).data, { n: 1 });
  assert.deepEqual(verifyWebhook(Buffer.from(body), new Headers(headers), secret).id, 'm1');
  assert.throws(() => verifyWebhook(body.replace('1}', '2}'), headers, secret), { code: 'invalid_signature' });
  assert.throws(() => verifyWebhook(body, { ...headers, 'webhook-id': 'm2' }, secret), { code: 'invalid_signature' });
  assert.throws(() => verifyWebhook(body, headers, 'whsec_' + Buffer.alloc(32).toString('base64')), {
    code: 'invalid_signature',
  });
  assert.throws(() => verifyWebhook(body, headers, secret, { now: Date.now() + 600_000 }), {
    code: 'timestamp_out_of_range',
  });
  assert.throws(() => verifyWebhook(body, {}, secret), { code: 'invalid_signature' });
  assert.equal(parseDuration('1m 30s'), 90000);
  assert.equal(parseDuration('500ms'), 500);

  // A webhook from the gateway, checked with verifyWebhook in a node:http receiver.
  const got = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        got.push(verifyWebhook(Buffer.concat(chunks), req.headers, secret));
        res.writeHead(204).end();
      } catch (e) {
        got.push(e);
        res.writeHead(400).end();
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const put = await fetch(`${gateway}/v1/webhooks/sdk-verify`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: `http://127.0.0.1:${server.address().port}/`, topics: ['hook.>'], secret }),
    });
    assert.equal(put.status, 201);
    const ew = new Eventwire({ url: gateway });
    const receipt = await ew.publish('hook.ping', { ok: true });
    await eventually('the webhook', () => got.length === 1);
    assert.equal(got[0].id, receipt.id);
    assert.deepEqual(got[0].data, { ok: true });
  } finally {
    server.close();
  }
});
