// Opens the built consumer app (served by a real gateway) in headless
// Chromium on each transport and checks that the round trip happened, and
// what the page fetched: without `share` only the entry chunk and the wasm
// (the share/persist layer is a chunk of its own, fetched by import() only
// when an app sets `share` or `persist`); with `share`, that chunk too.
// Usage: node run.mjs <gateway base URL>
import { chromium } from 'playwright-core';

const base = process.argv[2];
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
let failed = 0;
let passed = 0;
for (const [transport, share] of [
  ['websocket', false],
  ['sse', false],
  ['auto', false],
  ['websocket', true],
]) {
  const page = await browser.newPage();
  const logs = [];
  const scripts = [];
  page.on('request', (r) => /\.js$/.test(new URL(r.url()).pathname) && scripts.push(new URL(r.url()).pathname));
  page.on('console', (m) => logs.push(m.text()));
  page.on('pageerror', (e) => logs.push(String(e)));
  await page.goto(`${base}/?transport=${transport}${share ? '&share' : ''}`);
  const result = page.locator('#result');
  try {
    await result.filter({ hasNotText: 'pending' }).waitFor({ timeout: 15000 });
  } catch {
    // reported below
  }
  const text = await result.textContent();
  const expected = transport === 'auto' ? 'websocket' : transport;
  const name = `consumer app over ${transport}${share ? ' with share' : ''}`;
  // The entry chunk, then the layer's only with share.
  const chunks = scripts.length === (share ? 2 : 1);
  if (text?.startsWith(`ok ${expected} n=42 seq=`) && chunks) {
    passed++;
    console.log(`ok   ${name}: ${text}; scripts fetched: ${scripts.join(' ')}`);
  } else {
    failed++;
    console.log(`FAIL ${name}: ${text}; scripts fetched: ${scripts.join(' ')}\n${logs.join('\n')}`);
  }
  await page.close();
}
await browser.close();
console.log(`consumer: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
