// The browser benchmark: how many events per second reach a JS handler
// through EventChannel, against a plain EventSource + JSON.parse on the same
// gateway stream, in headless Chromium (playwright-core, Debian's Chromium).
//
//   node tests/bench-browser/run.mjs [--events 20000] [--runs 3] [--event-bytes 100]
//        [--gateway-bin target/release/eventwire-gateway] [--out result.json]
//        [--base-pkg DIR]
//
// --base-pkg DIR also measures another build of the package (say, main's
// before a change) in the same run, as base-channel-sse and base-channel-ws.
//
// It starts its own gateway on a free loopback port, serving a staging
// directory (this page, bench.js and a copy of channel-wasm/pkg; build that
// first with `bash scripts/build-client --pack`). Each run measures every
// client in turn, in a rotating order, each on its own topic, two ways:
//   live:    Node publishes the events as fast as it can in batched POSTs
//            while the client receives; the client may be publisher-bound.
//   backlog: the page's thread is kept busy while Node publishes, so the
//            events queue up; then they are dispatched as fast as the client
//            can. This isolates the client's own cost per event.
// Rates are events / (last − first arrival). Medians over the runs.
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { freePort } from '../e2e/harness.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const here = path.dirname(fileURLToPath(import.meta.url));

function args() {
  const a = { events: 20000, runs: 3, 'event-bytes': 100, 'gateway-bin': 'target/release/eventwire-gateway', out: '', batch: 100, parallel: 4, profile: '', 'base-pkg': '' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in a)) throw new Error(`unknown option --${k}`);
    a[k] = typeof a[k] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return a;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** The staging directory the gateway serves: page, script, package copy. */
function stage(basePkg) {
  const pkg = path.join(repo, 'channel-wasm/pkg');
  for (const f of ['index.js', 'eventwire_channel_bg.wasm']) {
    if (!existsSync(path.join(pkg, f))) throw new Error(`${pkg}/${f} is missing: run \`bash scripts/build-client --pack\` first`);
  }
  const dir = path.join(repo, 'target/bench-browser/www');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'pkg'), { recursive: true });
  cpSync(path.join(here, 'index.html'), path.join(dir, 'index.html'));
  cpSync(path.join(here, 'bench.js'), path.join(dir, 'bench.js'));
  // The whole package directory, whatever files it is made of.
  cpSync(pkg, path.join(dir, 'pkg'), { recursive: true });
  if (basePkg) cpSync(path.resolve(basePkg), path.join(dir, 'pkg-base'), { recursive: true });
  return dir;
}

async function startGateway(bin, dir) {
  const port = await freePort();
  const child = spawn(path.resolve(repo, bin), [
    '--listen', `127.0.0.1:${port}`,
    '--static-dir', dir,
    // The backlog mode queues every event for one client at once.
    '--outbox-bytes', String(256 * 1024 * 1024),
    '--history-max-events', '200000',
  ], { env: { ...process.env, RUST_LOG: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + 15000;
  for (;;) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {}
    if (Date.now() > until) throw new Error('the gateway did not start');
    await sleep(50);
  }
  return { url, child };
}

/** Batched POST bodies of `n` events of about `size` bytes on `topic`. */
function bodies(topic, n, size, batch, tag) {
  const out = [];
  for (let i = 0; i < n; i += batch) {
    const evs = [];
    for (let s = i; s < Math.min(n, i + batch); s++) {
      const base = JSON.stringify({ type: topic, id: `${tag}-${s}`, data: { s, p: '' } });
      evs.push(JSON.stringify({ type: topic, id: `${tag}-${s}`, data: { s, p: 'x'.repeat(Math.max(0, size - base.length)) } }));
    }
    out.push(`[${evs.join(',')}]`);
  }
  return out;
}

/** Sends the bodies, `parallel` POSTs in flight; returns events per second. */
async function publish(url, list, parallel, n) {
  const t0 = performance.now();
  let next = 0;
  async function lane() {
    while (next < list.length) {
      const body = list[next++];
      const r = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      if (!r.ok) throw new Error(`POST /v1/events: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
    }
  }
  await Promise.all(Array.from({ length: parallel }, lane));
  return { rate: n / ((performance.now() - t0) / 1000), ms: performance.now() - t0 };
}

/** Self time by function, top 25, to stderr. */
function printProfile(profile) {
  const self = new Map();
  const total = profile.samples.length;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  for (const id of profile.samples) {
    const f = byId.get(id).callFrame;
    const name = `${f.functionName || '(anonymous)'} ${path.basename(f.url)}:${f.lineNumber}`;
    self.set(name, (self.get(name) ?? 0) + 1);
  }
  for (const [name, n] of [...self].sort((x, y) => y[1] - x[1]).slice(0, 25)) {
    console.error(`${((100 * n) / total).toFixed(1).padStart(5)}%  ${name}`);
  }
}

const MODES = ['eventsource', 'channel-sse', 'websocket', 'channel-ws'];

async function main() {
  const a = args();
  const dir = stage(a['base-pkg']);
  if (a['base-pkg']) MODES.push('base-channel-sse', 'base-channel-ws');
  const { url, child } = await startGateway(a['gateway-bin'], dir);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const result = {
    events: a.events, event_bytes: a['event-bytes'], runs: a.runs, batch: a.batch, parallel_posts: a.parallel,
    chromium: browser.version(),
    live: Object.fromEntries(MODES.map((m) => [m, []])),
    backlog: Object.fromEntries(MODES.map((m) => [m, []])),
    publish_live: [], publish_backlog: [], errors: [],
  };
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => result.errors.push(`page: ${e.message}`));
    await page.goto(`${url}/index.html`);
    await page.waitForFunction(() => window.benchReady === true, null, { timeout: 15000 });
    for (let run = 0; run < a.runs; run++) {
      for (const kind of ['live', 'backlog']) {
        const order = MODES.map((_, i) => MODES[(i + run) % MODES.length]);
        for (const mode of order) {
          const topic = `bbench.r${run}.${kind}.${mode.replace(/[^a-z]/g, '')}`;
          const list = bodies(topic, a.events, a['event-bytes'], a.batch, topic);
          await page.evaluate(([m, t, n]) => window.bench.start(m, t, n), [mode, topic, a.events]);
          let pub;
          if (kind === 'live') {
            pub = await publish(url, list, a.parallel, a.events);
          } else {
            // Busy longer than publishing takes (checked below).
            const blockMs = 4000;
            const blocked = page.evaluate((ms) => window.bench.block(ms), blockMs);
            // Let the block begin before the first event can be dispatched.
            await sleep(300);
            pub = await publish(url, list, a.parallel, a.events);
            await blocked;
            if (pub.ms + 300 > blockMs) result.errors.push(`backlog ${mode} run ${run}: publishing took ${pub.ms.toFixed(0)} ms, longer than the block`);
          }
          // --profile MODE: V8's sampling profile of MODE's first backlog dispatch.
          const profiling = a.profile === mode && kind === 'backlog' && run === 0;
          const cdp = profiling ? await page.context().newCDPSession(page) : null;
          if (cdp) {
            await cdp.send('Profiler.enable');
            await cdp.send('Profiler.setSamplingInterval', { interval: 50 });
            await cdp.send('Profiler.start');
          }
          const r = await page.evaluate((ms) => window.bench.wait(ms), 60000);
          if (cdp) printProfile((await cdp.send('Profiler.stop')).profile);
          if (r.n !== a.events) result.errors.push(`${kind} ${mode} run ${run}: ${r.n} of ${a.events} events arrived`);
          const rate = r.n > 1 && r.ms > 0 ? (r.n - 1) / (r.ms / 1000) : null;
          result[kind][mode].push(rate);
          result[`publish_${kind}`].push(pub.rate);
          console.error(`run ${run} ${kind} ${mode}: ${rate?.toFixed(0)} ev/s (publisher ${pub.rate.toFixed(0)} ev/s)`);
        }
      }
    }
  } finally {
    await browser.close();
    child.kill('SIGTERM');
  }
  const med = (k, m) => median(result[k][m]);
  const ratio = (k, m, base = 'eventsource') => {
    const rs = result[k][m].map((v, i) => v / result[k][base][i]);
    return median(rs);
  };
  Object.assign(result, {
    eventsource_median: med('live', 'eventsource'),
    channel_sse_median: med('live', 'channel-sse'),
    channel_ws_median: med('live', 'channel-ws'),
    publish_median: median(result.publish_live),
    ratio_sse_live_median: ratio('live', 'channel-sse'),
    ratio_ws_live_median: ratio('live', 'channel-ws'),
    backlog_eventsource_median: med('backlog', 'eventsource'),
    backlog_channel_sse_median: med('backlog', 'channel-sse'),
    backlog_channel_ws_median: med('backlog', 'channel-ws'),
    ratio_sse_backlog_median: ratio('backlog', 'channel-sse'),
    ratio_ws_backlog_median: ratio('backlog', 'channel-ws'),
    websocket_median: med('live', 'websocket'),
    backlog_websocket_median: med('backlog', 'websocket'),
    ratio_ws_to_websocket_backlog_median: ratio('backlog', 'channel-ws', 'websocket'),
    ratio_ws_to_websocket_live_median: ratio('live', 'channel-ws', 'websocket'),
  });
  if (a['base-pkg']) {
    Object.assign(result, {
      ratio_base_sse_backlog_median: ratio('backlog', 'base-channel-sse'),
      ratio_base_ws_backlog_median: ratio('backlog', 'base-channel-ws'),
      ratio_base_sse_live_median: ratio('live', 'base-channel-sse'),
      ratio_base_ws_live_median: ratio('live', 'base-channel-ws'),
      // This build against the base build, run by run.
      ratio_sse_to_base_backlog_median: ratio('backlog', 'channel-sse', 'base-channel-sse'),
      ratio_ws_to_base_backlog_median: ratio('backlog', 'channel-ws', 'base-channel-ws'),
    });
  }
  // The headline: the backlog ratio isolates the client; the live one can be
  // capped by the publisher (see publish_median).
  result.ratio_sse_median = result.ratio_sse_backlog_median ?? result.ratio_sse_live_median;
  result.ratio_ws_median = result.ratio_ws_backlog_median ?? result.ratio_ws_live_median;
  const json = JSON.stringify(result, null, 2);
  if (a.out) {
    mkdirSync(path.dirname(path.resolve(a.out)), { recursive: true });
    writeFileSync(a.out, json + '\n');
  }
  console.log(json);
  if (result.errors.length) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
