// Opens the built consumer app (served by a real gateway) in headless
// Chromium on each transport and checks that the round trip happened.
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
for (const transport of ['websocket', 'sse', 'auto']) {
  const page = await browser.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  page.on('pageerror', (e) => logs.push(String(e)));
  await page.goto(`${base}/?transport=${transport}`);
  const result = page.locator('#result');
  try {
    await result.filter({ hasNotText: 'pending' }).waitFor({ timeout: 15000 });
  } catch {
    // reported below
  }
  const text = await result.textContent();
  const expected = transport === 'auto' ? 'websocket' : transport;
  if (text?.startsWith(`ok ${expected} n=42 seq=`)) {
    passed++;
    console.log(`ok   consumer app over ${transport}: ${text}`);
  } else {
    failed++;
    console.log(`FAIL consumer app over ${transport}: ${text}\n${logs.join('\n')}`);
  }
  await page.close();
}
await browser.close();
console.log(`consumer: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
