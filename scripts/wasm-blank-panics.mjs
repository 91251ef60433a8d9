// Usage: node scripts/wasm-blank-panics.mjs MODULE.wasm
//
// Zeroes, in the optimized client module, the read-only data that only
// `alloc`'s panics refer to and nothing ever reads: the messages
// "capacity overflow" and "memory allocation of … bytes failed", the
// `/rustc/<commit>/library/alloc/src/…` paths of their source locations,
// and core's table of decimal digits that formatting the size would use.
// (docs/CLIENT-SIZE.md: the step that introduced it, and "What would get
// it to 14 KB".)
//
// Why they are there at all: every `Vec` or `String` that grows can, in
// principle, overflow its capacity or fail to allocate, and `alloc` then
// panics with a formatted message and a location. The client's panic
// handler traps at once without reading them (channel-wasm/src/lib.rs),
// but the code that builds the panic's arguments stores their addresses on
// the stack before it traps, so the linker and wasm-opt must keep the bytes
// (a trap leaves memory observable). On stable Rust nothing removes them:
// `panic_immediate_abort` and a custom `alloc_error_handler` are
// nightly-only. Zeroed, they cost almost nothing in gzip.
//
// Robust, not a guess: it changes nothing unless all of this holds, and
// otherwise fails (so a new toolchain or new code is looked at, not
// silently mis-blanked):
// - each expected piece is found exactly once, in an active data segment;
// - the region from the first of them to the end of the last one is
//   referred to by no word of data outside it, and in code only by
//   functions that cannot read memory or let an address escape: no load,
//   no memory.copy, no return, no call except to another such function,
//   and the last instruction of the body is `unreachable`, so every path
//   through them traps;
// - the whole region is then zeroed (the structures between the pieces,
//   the locations and argument lists, are read by nothing either).
// The check reads the module's text from binaryen's `wasm-dis` (on PATH,
// as for wasm-opt).

import { readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { reader, sections } from './wasm-module.mjs';

const file = process.argv[2];
const fail = (why) => {
  console.error(`wasm-blank-panics: ${file}: ${why}; nothing blanked`);
  process.exit(1);
};
const wasm = readFileSync(file);

// The active data segments: [address, offset in the file, length].
function segments() {
  for (const section of sections(wasm)) {
    if (section.id != 11) continue;
    const r = reader(wasm, section.at);
    const out = [];
    for (let count = r.u(); count--; ) {
      const flags = r.u();
      if (flags != 0 || wasm[r.at++] != 0x41) fail('a data segment that is not active at an i32.const');
      const address = r.s();
      if (wasm[r.at++] != 0x0b) fail('a data segment offset that is not a constant');
      const len = r.u();
      out.push([address, r.at, len]);
      r.at += len;
    }
    return out;
  }
  fail('no data section');
}

const segs = segments();
const pieces = [
  /\/rustc\/[0-9a-f]{40}\/library\/alloc\/src\/raw_vec\/mod\.rs/g,
  /\/rustc\/[0-9a-f]{40}\/library\/alloc\/src\/alloc\.rs/g,
  /memory allocation of /g,
  / bytes failed/g,
  /capacity overflow/g,
  new RegExp(Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0')).join(''), 'g'),
];
let lo = Infinity, hi = -Infinity, seg;
for (const re of pieces) {
  const found = [];
  for (const s of segs) {
    const text = wasm.subarray(s[1], s[1] + s[2]).toString('latin1');
    for (const m of text.matchAll(re)) found.push([s, m.index, m[0].length]);
  }
  if (found.length != 1) fail(`${re.source.slice(0, 40)} found ${found.length} times, not once`);
  const [s, i, n] = found[0];
  if (seg && seg != s) fail('the pieces are in different data segments');
  seg = s;
  lo = Math.min(lo, s[0] + i);
  hi = Math.max(hi, s[0] + i + n);
}

// No data outside the region points into it.
for (const [address, offset, len] of segs) {
  for (let i = 0; i + 4 <= len; i++) {
    const a = address + i;
    if (a + 4 > lo && a < hi) continue;
    const word = wasm.readUInt32LE(offset + i);
    if (word >= lo && word < hi) fail(`data at ${a} points into the region [${lo}, ${hi})`);
  }
}

// Every function whose code names an address in the region traps without
// reading memory.
const wat = execFileSync('wasm-dis', [file], { encoding: 'utf8', maxBuffer: 64 << 20 });
// wasm-dis indents a function's body by two or more spaces and closes it
// with a line of one space and a parenthesis.
const funcs = new Map([...wat.matchAll(/^ \(func \$(\S+)[^]*?\n \)$/gm)].map((m) => [m[1], m[0]]));
if (funcs.size != (wat.match(/^ \(func /gm) || []).length) fail('could not read every function');
const refers = (body) =>
  [...body.matchAll(/(?:i32\.const |offset=)(\d+)/g)].some((m) => +m[1] >= lo && +m[1] < hi);
const users = [...funcs].filter(([, body]) => refers(body)).map(([name]) => name);
for (const name of users) {
  const body = funcs.get(name);
  if (/\.load|memory\.copy|\(return|call_indirect|return_call/.test(body)) fail(`${name} may read memory or return`);
  for (const [, callee] of body.matchAll(/\(call \$(\S+)/g))
    if (!users.includes(callee)) fail(`${name} calls ${callee}`);
  if (!/\n  \(unreachable\)\n \)$/.test(body)) fail(`${name} does not end in unreachable`);
}
if (!users.length) fail('no code refers to the region (wasm-opt should have dropped it: look again)');

wasm.fill(0, seg[1] + (lo - seg[0]), seg[1] + (hi - seg[0]));
writeFileSync(file, wasm);
console.log(`wasm-blank-panics: zeroed ${hi - lo} bytes of alloc's panic data at ${lo} (used only by ${users.join(', ')})`);
