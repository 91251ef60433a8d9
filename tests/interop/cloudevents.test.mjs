// CloudEvents 1.0 interop, checked with the official SDK for JavaScript
// (npm `cloudevents`) against a real gateway: what the SDK builds, in
// structured, binary and batch mode, is accepted and arrives intact, and
// every event the gateway delivers parses with the SDK.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { CloudEvent, HTTP } from 'cloudevents';
import { startGateway, shutdown } from '../e2e/harness.mjs';

let gateway;
const delivered = [];

before(async () => {
  gateway = await startGateway();
});
after(shutdown);

/** An SSE subscription to `pattern`; `next(n)` resolves with n envelopes (JSON text). */
async function subscribe(pattern) {
  const abort = new AbortController();
  const r = await fetch(`${gateway}/v1/sse?named=0&topic=${encodeURIComponent(pattern)}`, {
    signal: abort.signal,
  });
  assert.equal(r.status, 200);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  const queue = [];
  let welcomed;
  const welcome = new Promise((resolve) => (welcomed = resolve));
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const data = block.split('\n').find((l) => l.startsWith('data: '))?.slice(6);
        if (block.includes('event: $welcome')) welcomed();
        else if (data) queue.push(data);
      }
    }
  })().catch(() => {});
  await welcome;
  return {
    async next(n) {
      const deadline = Date.now() + 15000;
      while (queue.length < n) {
        if (Date.now() > deadline) throw new Error(`timed out: ${queue.length} of ${n} events`);
        await new Promise((res) => setTimeout(res, 20));
      }
      const got = queue.splice(0, n);
      delivered.push(...got);
      return got;
    },
    close() {
      abort.abort();
      return pump;
    },
  };
}

async function post(message) {
  const r = await fetch(`${gateway}/v1/events`, {
    method: 'POST',
    headers: Object.fromEntries(Object.entries(message.headers).map(([k, v]) => [k, String(v)])),
    body: message.body,
  });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  return body;
}

/** The SDK's reading of a delivered envelope, as a consumer would do it. */
function parse(json) {
  return HTTP.toEvent({ headers: { 'content-type': 'application/cloudevents+json' }, body: json });
}

/** Every attribute the SDK reads from its own message must arrive as it is. */
function assertIntact(sent, got) {
  const want = HTTP.toEvent(sent);
  for (const [k, v] of Object.entries(want)) {
    if (k === 'data' || v === undefined) continue;
    assert.deepEqual(got[k], v, `attribute ${k}`);
  }
  if (want.data instanceof Uint8Array || ArrayBuffer.isView(want.data)) {
    assert.deepEqual([...got.data], [...want.data], 'binary data');
  } else {
    assert.deepEqual(got.data, want.data, 'data');
  }
  assert.match(got.seq, /^[A-Za-z0-9_]+-[0-9]+$/, 'the gateway adds its position');
}

const traced = {
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
  partitionkey: 'customer-17',
};

/** Events of every kind; `typed` adds integer and boolean extensions. */
function events(prefix, typed = true) {
  const typedExtensions = typed ? { attempt: 3, urgent: true } : {};
  return [
    new CloudEvent({
      type: `${prefix}.placed`,
      source: '/shop/orders',
      subject: 'orders/1001',
      dataschema: 'https://example.com/schemas/order.json',
      data: { order: 1001, total: '42.50', lines: [{ sku: 'a', n: 2 }] },
      ...traced,
      ...typedExtensions,
    }),
    new CloudEvent({
      type: `${prefix}.note`,
      source: 'urn:example:notes',
      datacontenttype: 'text/plain',
      data: 'hello, wörld',
      ...traced,
    }),
    new CloudEvent({
      type: `${prefix}.blob`,
      source: '/blobs',
      datacontenttype: 'application/octet-stream',
      data: new Uint8Array([0, 1, 2, 250, 255]),
    }),
  ];
}

test('structured mode: what the SDK builds is accepted and arrives intact', async () => {
  const sub = await subscribe('ces.>');
  const sent = events('ces').map((e) => HTTP.structured(e));
  for (const m of sent) await post(m);
  const got = (await sub.next(sent.length)).map(parse);
  sent.forEach((m, i) => assertIntact(m, got[i]));
  assert.equal(got[0].attempt, 3, 'integer extension keeps its type');
  assert.equal(got[0].urgent, true, 'boolean extension keeps its type');
  await sub.close();
});

test('binary mode: ce-* headers and a raw body are accepted and arrive intact', async () => {
  const sub = await subscribe('ceb.>');
  // Header values are strings, so extensions travel as strings in this mode.
  const sent = events('ceb', false).map((e) => HTTP.binary(e));
  const receipts = [];
  for (const m of sent) receipts.push(await post(m));
  const got = (await sub.next(sent.length)).map(parse);
  sent.forEach((m, i) => {
    assertIntact(m, got[i]);
    assert.equal(receipts[i].id, got[i].id);
    assert.equal(receipts[i].seq, got[i].seq);
  });
  assert.equal(got[1].data, 'hello, wörld', 'text stays text');
  await sub.close();
});

test('batch mode: application/cloudevents-batch+json is accepted in order', async () => {
  const sub = await subscribe('cebatch.>');
  const batch = events('cebatch');
  const r = await fetch(`${gateway}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents-batch+json' },
    body: JSON.stringify(batch),
  });
  const receipts = await r.json();
  assert.equal(r.status, 200, JSON.stringify(receipts));
  assert.deepEqual(
    receipts.map((x) => x.id),
    batch.map((e) => e.id),
  );
  const got = (await sub.next(batch.length)).map(parse);
  batch.forEach((e, i) => assertIntact(HTTP.structured(e), got[i]));
  await sub.close();
});

test('times the SDK cannot read are refused; the gateway default and producer times parse', async () => {
  const sub = await subscribe('cetime.>');
  for (const time of ['1998-12-31T23:59:60Z', '2026-02-30T00:00:00Z', '2026-11-23 19:23:57Z', '2026-11-23t19:23:57z']) {
    const r = await fetch(`${gateway}/v1/events`, {
      method: 'POST',
      body: JSON.stringify({ type: 'cetime.bad', time }),
    });
    assert.equal(r.status, 400, time);
    assert.equal((await r.json()).error.code, 'invalid_event', time);
  }
  // Why: the first two make the SDK throw.
  assert.throws(() => new CloudEvent({ type: 'a', source: '/s', time: '1998-12-31T23:59:60Z' }).toString());
  assert.throws(() => new CloudEvent({ type: 'a', source: '/s', time: '2026-02-30T00:00:00Z' }));
  const good = ['2024-02-29T23:59:59.123456789+05:30', '2026-11-23T19:23:57Z', '0001-01-01T00:00:00-00:00'];
  for (const time of good) {
    const r = await fetch(`${gateway}/v1/events`, { method: 'POST', body: JSON.stringify({ type: 'cetime.ok', time }) });
    assert.equal(r.status, 200, time);
  }
  await fetch(`${gateway}/v1/events`, { method: 'POST', body: JSON.stringify({ type: 'cetime.default', data: 1 }) });
  const raw = await sub.next(good.length + 1);
  assert.deepEqual(
    raw.slice(0, good.length).map((json) => JSON.parse(json).time),
    good,
    'a producer time is relayed as sent',
  );
  const got = raw.map(parse);
  assert.deepEqual(
    got.slice(0, good.length).map((e) => e.time),
    good.map((t) => new Date(t).toISOString()),
    'and the SDK reads the same instant',
  );
  for (const e of got) assert.doesNotThrow(() => e.toString(), e.time);
  await sub.close();
});

test('every event the gateway delivered parses with the SDK and serializes again', () => {
  assert.ok(delivered.length >= 10, `${delivered.length} events`);
  for (const json of delivered) {
    const e = parse(json);
    assert.doesNotThrow(() => e.validate());
    assert.doesNotThrow(() => JSON.parse(e.toString()));
    assert.equal(e.specversion, '1.0');
  }
});
