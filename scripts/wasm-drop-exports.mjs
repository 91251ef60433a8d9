// Usage: node scripts/wasm-drop-exports.mjs IN.wasm OUT.wasm NAME...
//
// Writes IN without the exports NAME... (each must be there). rustc links
// every wasm32 cdylib with `--export=__heap_base --export=__data_end`,
// which the client's glue never reads (its allocator, src/heap.rs, starts
// where the memory ends); without the exports, wasm-opt also drops the two
// globals behind them. scripts/build-client runs this on cargo's output,
// before wasm-opt.

import { readFileSync, writeFileSync } from 'node:fs';
import { reader, sections, uleb } from './wasm-module.mjs';

const [input, output, ...names] = process.argv.slice(2);
const wasm = readFileSync(input);
const parts = [wasm.subarray(0, 8)];
const dropped = new Set();
for (const section of sections(wasm)) {
  if (section.id != 7) {
    parts.push(wasm.subarray(section.start, section.end));
    continue;
  }
  const r = reader(wasm, section.at);
  const kept = [];
  for (let count = r.u(); count--; ) {
    const entry = r.at;
    const len = r.u();
    const name = wasm.subarray(r.at, r.at + len).toString();
    r.at += len + 1; // the name, then the kind
    r.u(); // the index
    if (names.includes(name)) dropped.add(name);
    else kept.push(wasm.subarray(entry, r.at));
  }
  const body = Buffer.concat([uleb(kept.length), ...kept]);
  parts.push(Buffer.from([7]), uleb(body.length), body);
}
const missing = names.filter((n) => !dropped.has(n));
if (missing.length) {
  console.error(`wasm-drop-exports: ${input} has no export ${missing.join(', ')}`);
  process.exit(1);
}
writeFileSync(output, Buffer.concat(parts));
