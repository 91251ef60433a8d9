// The client's own cost per event, in isolation: no gateway, no publisher,
// no browser. Fake EventSource / WebSocket classes stand in for the
// browser's, a channel connects through them, and N distinct event frames
// are dispatched to it synchronously and timed, against JSON.parse + the
// same handler on the same frames. It complements run.mjs (the real thing
// in Chromium), whose figures a loaded machine can leave publisher-bound.
//
//   node tests/bench-browser/isolated.mjs [PKG_INDEX_JS] [sse|websocket] [EVENTS] [ROUNDS]
//
// PKG_INDEX_JS defaults to channel-wasm/pkg/index.js (build it first with
// `bash scripts/build-client`); give another build's index.js to compare,
// alternating runs, on the same machine. Prints one JSON line: events/s
// through the channel and through JSON.parse, medians over the rounds,
// and their ratio.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const [pkg = path.join(repo, 'channel-wasm/pkg/index.js'), transport = 'sse', events = '50000', rounds = '7'] =
  process.argv.slice(2);
const n = Number(events);

let last;
globalThis.EventSource = class {
  constructor(url) {
    this.url = url;
    this.l = {};
    last = this;
  }
  addEventListener(type, f) {
    this.l[type] = f;
  }
  close() {}
};
globalThis.WebSocket = class {
  constructor(url) {
    this.url = url;
    last = this;
  }
  /** Answers the first subscribe as the gateway would. */
  send(text) {
    const f = JSON.parse(text);
    if (f.op === 'subscribe' && f.ref === 'sub') {
      const answer = { op: 'subscribed', ref: 'sub', recovered: true, position: 'p0' };
      queueMicrotask(() => this.onmessage({ data: JSON.stringify(answer) }));
    }
  }
  close() {}
};

const { EventChannel } = await import(pathToFileURL(path.resolve(pkg)).href);
const connecting = EventChannel.connect({ url: 'http://bench.invalid', transport, topics: ['b.>'] });
// The wasm loads before the channel opens its transport: wait for it (a
// fixed wait was too short on a loaded machine).
while (!last) await new Promise((r) => setTimeout(r, 10));
const welcome = { heartbeat_ms: 15000, max_event_bytes: 65536, recovered: true, position: 'p0' };
if (transport === 'sse') last.l['$welcome']({ data: JSON.stringify(welcome) });
else last.onmessage({ data: JSON.stringify({ op: 'welcome', ...welcome }) });
const channel = await connecting;
let got = 0;
channel.subscribe('b.>', (e) => (got += e.data.n > -1 ? 1 : 0));

const results = [];
for (let r = 0; r < Number(rounds); r++) {
  const frames = [];
  for (let i = 0; i < n; i++) {
    const e = { id: `id-${r}-${i}`, source: 'bench', type: 'b.x', seq: `m1-${r * n + i}`, data: { n: i, pad: 'p'.repeat(60) } };
    frames.push(JSON.stringify(transport === 'sse' ? e : { op: 'event', event: e }));
  }
  const before = got;
  let t = performance.now();
  for (const data of frames) last.onmessage({ data });
  const client = performance.now() - t;
  if (got - before !== n) throw new Error(`delivered ${got - before} of ${n}`);
  let plain = 0;
  t = performance.now();
  for (const f of frames) {
    const e = JSON.parse(f);
    plain += (transport === 'sse' ? e : e.event).data.n > -1 ? 1 : 0;
  }
  results.push({ client: (n / client) * 1000, plain: (n / (performance.now() - t)) * 1000 });
}
const median = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
const client = median(results.map((r) => r.client));
const plain = median(results.map((r) => r.plain));
console.log(JSON.stringify({ pkg, transport, events: n, client_per_s: Math.round(client), json_parse_per_s: Math.round(plain), ratio: +(client / plain).toFixed(3) }));
await channel.close();
