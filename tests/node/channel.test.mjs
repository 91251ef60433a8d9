// The npm package in Node (issue 17, item 12): importing it never throws,
// and connect() works over WebSocket with the wasm read from the package's
// file, against a real gateway. Node 22+ has a global WebSocket; on Node 20
// scripts/test runs this file with --experimental-websocket, which exposes
// the same (undici) WebSocket. A runtime without one is refused with the
// documented code `unsupported_runtime`, checked in a child process that
// has no WebSocket.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repo, startGateway, shutdown, eventually } from '../e2e/harness.mjs';

const pkg = pathToFileURL(path.join(repo, 'channel-wasm/pkg/index.js')).href;
let gateway;

before(async () => {
  gateway = await startGateway('--engine', 'memory');
});
after(shutdown);

test('connect, subscribe and emit over WebSocket in Node', async () => {
  assert.equal(typeof WebSocket, 'function', 'run with Node 22+ or --experimental-websocket');
  const { EventChannel } = await import(pkg);
  // No EventSource in Node: `auto` must pick WebSocket, not fail over to SSE.
  const channel = await EventChannel.connect({ url: gateway, topics: ['node.*'] });
  try {
    assert.equal(channel.transport, 'websocket');
    const seen = [];
    channel.subscribe('node.ping', (e) => seen.push(e));
    const receipt = await channel.emit('node.ping', { n: 1 });
    assert.equal(receipt.duplicate, false);
    assert.ok(receipt.seq, 'the gateway acknowledged with a seq');
    await eventually('the event back', () => seen.length === 1);
    assert.deepEqual(seen[0].data, { n: 1 });
    assert.equal(seen[0].seq, receipt.seq);
  } finally {
    await channel.close();
  }
});

test('without WebSocket: the import works and connect() rejects with unsupported_runtime', () => {
  const major = Number(process.versions.node.split('.')[0]);
  // Node 22+ must be told to hide its WebSocket; Node 20 has none by default.
  const flags = major >= 22 ? ['--no-experimental-websocket'] : [];
  const script = `
    const { EventChannel } = await import(${JSON.stringify(pkg)});
    try {
      await EventChannel.connect({ url: ${JSON.stringify(gateway)}, connectTimeoutMs: 2000 });
      console.log('connected');
    } catch (e) {
      console.log(JSON.stringify({ code: e.code, message: e.message }));
    }`;
  const out = execFileSync(process.execPath, [...flags, '--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  const got = JSON.parse(out.trim());
  assert.equal(got.code, 'unsupported_runtime');
  assert.match(got.message, /WebSocket/);
});
