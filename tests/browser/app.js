// Runs in the page. Imports the package as an app does and gives the tests
// (page.evaluate in tests/browser/*.test.mjs) a few helpers as `window.t`:
// they record what the public API reports, nothing more.
import { EventChannel } from './package/index.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** What an `Error` with a `code` says, as plain data the test can read. */
const described = (e) => ({ code: e?.code, message: e?.message, cause: e?.cause?.message ?? e?.cause });

/** `EventChannel.connect(options)`; also records every state (with its
 * info) and every `onError` value from then on. */
async function connect(options) {
  const channel = await EventChannel.connect(options);
  const states = [];
  const errors = [];
  channel.onState((state, info) => states.push({ state, info }));
  channel.onError((e) => errors.push(described(e)));
  return { channel, states, errors };
}

/** Subscribes a recorder to `pattern`: the array of events it got. */
function record(channel, pattern) {
  const events = [];
  channel.subscribe(pattern, (e) => events.push(e));
  return events;
}

/** What a promise (an emit, say) settled with: `{ value }` or `{ error }`. */
const settle = (promise) =>
  promise.then(
    (value) => ({ value }),
    (e) => ({ error: described(e) }),
  );

/** Waits up to `ms` for `cond()`; throws saying what did not happen. */
async function until(what, cond, ms = 15000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** POSTs events to the gateway (`POST /v1/events`) with the page's fetch; the receipt(s). */
async function publish(url, body) {
  const r = await fetch(`${url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`publish: ${r.status} ${await r.text()}`);
  return r.json();
}

/** Events `type` with `data.n` from `from` to `to`, each padded by `pad` bytes. */
const batch = (type, from, to, pad = 0) =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ type, data: { n: from + i, pad: 'p'.repeat(pad) } }));

/** The `data.n` of each event, in order. */
const ns = (events) => events.map((e) => e.data.n);

window.t = { EventChannel, connect, record, settle, until, sleep, publish, batch, ns };
