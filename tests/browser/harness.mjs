// The npm package `eventwire` in headless Chromium against real gateways on
// loopback, driven through its public API only (`EventChannel.connect`,
// subscribe, emit, onState, onError, close, ...), so the tests hold whatever
// the package's inside is. What the page loads is the packed tarball
// (`scripts/build-client --pack`), unpacked: the files a user installs.
//
// The page is served from an origin of its own (a small static server
// here), so every gateway is cross-origin to it, as to a real app; the
// gateways run with `--cors-origin '*'`. Processes and the browser come from
// tests/e2e/harness.mjs; `after(shutdown)` in each test file stops them.
//
// To run: `cargo build -p eventwire-gateway`, `bash scripts/build-client
// --pack`, then `node --test tests/browser/` (one file: name it; one test:
// `--test-name-pattern`). Each test runs its scenario in the page with one
// `page.evaluate` (helpers: app.js) and asserts in Node on what it returns.
import { createServer } from 'node:http';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchBrowser, repo, shutdown as stopProcesses, startGateway } from '../e2e/harness.mjs';

export { eventually } from '../e2e/harness.mjs';

export const TRANSPORTS = ['websocket', 'sse'];

/** Each test's limit (`test(name, { timeout }, fn)`): a client that hangs
 * (an emit that never settles) fails its test instead of the whole run.
 * Generous: the machine is shared; no test asserts on speed. */
export const timeout = 60_000;

/** The secret of the `auth` gateway, for tests that mint their own tokens. */
export const JWT_SECRET = `browser-tests-only-${process.pid}-${Date.now()}-of-enough-length`;

/** The gateways the tests need, by name, started on first use. */
const FLAGS = {
  main: [],
  // An 8 KiB outbox: a burst of 100 events of 200 bytes makes the gateway
  // cut the connection as a slow consumer.
  tight: ['--outbox-bytes', '8192'],
  noWebSocket: ['--websocket=false'],
  // A 1 s heartbeat, so an expired token's grace period is short.
  auth: ['--jwt-secret', JWT_SECRET, '--heartbeat', '1s'],
  // A 1 s heartbeat, so a silent connection is found dead within seconds.
  quickHeartbeat: ['--heartbeat', '1s'],
};
const started = new Map();

/** The base URL of the gateway `name` (see FLAGS), shared by the tests of
 * one file, starting it if needed. */
export function gateway(name) {
  if (!FLAGS[name]) throw new Error(`no gateway named ${name}`);
  const bin = path.join(repo, 'target/debug/eventwire-gateway');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`cargo build -p eventwire-gateway\` first`);
  if (!started.has(name)) started.set(name, startOwnGateway(...FLAGS[name]));
  return started.get(name);
}

/** A gateway for one test alone (to restart it, say): memory engine, CORS
 * open, `flags` added; its base URL. */
export function startOwnGateway(...flags) {
  return startGateway('--engine', 'memory', '--cors-origin', '*', ...flags);
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
let app;

/** Unpacks the tarball and serves it under /package/, beside app.html and
 * app.js (the page and its test helpers); answers the server's base URL. */
function serveApp() {
  app ??= new Promise((resolve, reject) => {
    const tarball = path.join(repo, 'channel-wasm/pkg/eventwire.tgz');
    if (!existsSync(tarball)) {
      throw new Error(`${tarball} is missing: run \`bash scripts/build-client --pack\` first`);
    }
    const dir = mkdtempSync(path.join(tmpdir(), 'eventwire-browser-'));
    execFileSync('tar', ['-xzf', tarball, '-C', dir]);
    const here = path.join(repo, 'tests/browser');
    const server = createServer((req, res) => {
      const url = new URL(req.url, 'http://x');
      const file = url.pathname.startsWith('/package/')
        ? path.join(dir, path.normalize(url.pathname))
        : path.join(here, url.pathname === '/' ? 'app.html' : path.basename(url.pathname));
      const type = TYPES[path.extname(file)];
      if (!type || !file.startsWith(dir) && !file.startsWith(here) || !existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': type }).end(readFileSync(file));
    });
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, dir, url: `http://127.0.0.1:${server.address().port}` }));
  });
  return app;
}

/**
 * A fresh page with the package loaded and the helpers of app.js as
 * `window.t`. Close it at the end of a test: its channels go with it.
 */
export async function openApp() {
  const { url } = await serveApp();
  const page = await (await launchBrowser()).newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(url);
  await page.waitForFunction(() => window.t, null, { timeout: 15000 });
  return page;
}

/** A topic root of its own per test, so tests sharing a gateway cannot interfere. */
export function root(name) {
  return `t${Math.floor(Math.random() * 1e9)}.${name}`;
}

/** Stops the gateways, the browser and the page's server. */
export async function shutdown() {
  await stopProcesses();
  started.clear();
  const a = await app?.catch(() => undefined);
  app = undefined;
  a?.server.close();
  if (a) rmSync(a.dir, { recursive: true, force: true });
}
