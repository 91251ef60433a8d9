// Real processes for the end-to-end tests: gateways (with the demo page),
// the example worker, and headless Chromium.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const gatewayBin = path.join(repo, 'target/debug/eventwire-gateway');
const workerBin = path.join(repo, 'target/debug/examples/worker');
const children = new Set();

/** A free loopback port (also used by tests/bench-browser/run.mjs). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Polls `check` until it returns a truthy value or `ms` pass. */
export async function eventually(what, check, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

const gateways = new Map();

function spawnGateway(port, args) {
  const child = spawn(gatewayBin, ['--listen', `127.0.0.1:${port}`, '--static-dir', path.join(repo, 'www/dist'), ...args], {
    env: { ...process.env, RUST_LOG: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.add(child);
  return child;
}

/**
 * Starts a gateway serving the built demo page; returns its base URL. It
 * runs the default (disk) engine on a data dir of its own, unless `args`
 * name an engine or a data dir.
 */
export async function startGateway(...args) {
  const port = await freePort();
  if (!args.some((a) => a.startsWith('--engine') || a.startsWith('--data-dir'))) {
    args = ['--data-dir', mkdtempSync(path.join(tmpdir(), 'eventwire-e2e-')), ...args];
  }
  const child = spawnGateway(port, args);
  const url = `http://127.0.0.1:${port}`;
  gateways.set(url, { child, port, args });
  await eventually('the gateway', async () => (await fetch(`${url}/readyz`)).ok);
  return url;
}

/**
 * Stops the gateway at `url` (SIGKILL, or SIGTERM when `graceful`) and
 * starts it again on the same port, data dir and flags.
 */
export async function restartGateway(url, { graceful = false } = {}) {
  await stopGateway(url, { graceful });
  await startAgain(url);
}

/** Stops the gateway at `url` (SIGKILL, or SIGTERM when `graceful`); `startAgain` brings it back. */
export async function stopGateway(url, { graceful = false } = {}) {
  const gw = gateways.get(url);
  const exited = new Promise((r) => gw.child.once('exit', r));
  gw.child.kill(graceful ? 'SIGTERM' : 'SIGKILL');
  await exited;
  children.delete(gw.child);
}

/** Starts the stopped gateway at `url` again, on the same port, data dir and flags. */
export async function startAgain(url) {
  const gw = gateways.get(url);
  gw.child = spawnGateway(gw.port, gw.args);
  await eventually('the restarted gateway', async () => (await fetch(`${url}/readyz`)).ok);
}

/** Collects each line a backend prints on `stream` (one JSON object per handled event). */
export function jsonLines(stream) {
  const lines = [];
  let buf = '';
  stream.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) lines.push(JSON.parse(line));
    }
  });
  return lines;
}

/** Starts the example worker against `gateway`; `handled` collects the UI events it handled. */
export async function startWorker(gateway) {
  const child = spawn(workerBin, [gateway], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const handled = jsonLines(child.stdout);
  // The worker is ready once its subscription exists: probe until it answers.
  const probes = new Set();
  await eventually('the worker', async () => {
    if (handled.some((h) => probes.has(h.handled))) return true;
    const probe = `probe-${Math.random()}`;
    probes.add(probe);
    await publish(gateway, { type: 'ui.probe', id: probe });
    await new Promise((r) => setTimeout(r, 200));
    return handled.some((h) => probes.has(h.handled));
  });
  return { handled };
}

export async function publish(gateway, body) {
  const r = await fetch(`${gateway}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`publish: ${r.status} ${await r.text()}`);
  return r.json();
}

let browser;
/** Headless Chromium (the system's), launched once per test process; `shutdown` closes it. */
export function launchBrowser() {
  browser ??= chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  return browser;
}

export async function openPage(url) {
  const page = await (await launchBrowser()).newPage({ viewport: { width: 1100, height: 760 } });
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(url);
  await page.locator('#badge[data-state="open"]').waitFor({ timeout: 15000 });
  return page;
}

/** The feed's rows of one type, oldest first (the page prepends). */
export async function feed(page, type) {
  const rows = await page.locator('#feed li').evaluateAll((lis) =>
    lis.map((li) => ({
      type: li.querySelector('.type').textContent,
      data: JSON.parse(li.querySelector('.data').textContent),
      correlationid: li.dataset.correlationid,
    })),
  );
  return rows.filter((r) => !type || r.type === type).reverse();
}

export async function shutdown() {
  await (await browser)?.close();
  browser = undefined;
  for (const c of children) c.kill('SIGTERM');
  children.clear();
}
