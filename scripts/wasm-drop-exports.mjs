// Usage: node scripts/wasm-drop-exports.mjs IN.wasm OUT.wasm NAME...
//
// Writes IN without the exports NAME... (each must be there). rustc links
// every wasm32 cdylib with `--export=__heap_base --export=__data_end`,
// which the client's glue never reads (its allocator, src/heap.rs, starts
// where the memory ends); without the exports, wasm-opt also drops the two
// globals behind them. scripts/build-client runs this on cargo's output,
// before wasm-opt.

import { readFileSync, writeFileSync } from 'node:fs';

const [input, output, ...names] = process.argv.slice(2);
const wasm = readFileSync(input);
let at = 8;
const leb = () => {
  let n = 0, shift = 0, b;
  do {
    b = wasm[at++];
    n += (b & 0x7f) * 2 ** shift;
    shift += 7;
  } while (b & 0x80);
  return n;
};
const uleb = (n) => {
  const out = [];
  do {
    out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>>= 7;
  } while (n);
  return Buffer.from(out);
};

const parts = [wasm.subarray(0, 8)];
const dropped = new Set();
while (at < wasm.length) {
  const start = at;
  const id = wasm[at++];
  const size = leb();
  const end = at + size;
  if (id != 7) {
    parts.push(wasm.subarray(start, end));
  } else {
    const kept = [];
    for (let count = leb(); count--; ) {
      const entry = at;
      const len = leb();
      const name = wasm.subarray(at, at + len).toString();
      at += len + 1; // the name, then the kind
      leb(); // the index
      if (names.includes(name)) dropped.add(name);
      else kept.push(wasm.subarray(entry, at));
    }
    const body = Buffer.concat([uleb(kept.length), ...kept]);
    parts.push(Buffer.from([7]), uleb(body.length), body);
  }
  at = end;
}
const missing = names.filter((n) => !dropped.has(n));
if (missing.length) {
  console.error(`wasm-drop-exports: ${input} has no export ${missing.join(', ')}`);
  process.exit(1);
}
writeFileSync(output, Buffer.concat(parts));
