// Reading a wasm module's binary, for the build's post-link steps
// (wasm-drop-exports.mjs, wasm-blank-panics.mjs): its sections and the
// LEB128 numbers they are written in.

/** A cursor over `wasm` from `at`, reading LEB128 numbers. */
export function reader(wasm, at = 8) {
  const r = {
    at,
    /** An unsigned LEB128. */
    u() {
      let n = 0, shift = 0, b;
      do {
        b = wasm[r.at++];
        n += (b & 0x7f) * 2 ** shift;
        shift += 7;
      } while (b & 0x80);
      return n;
    },
    /** A signed 32-bit LEB128. */
    s() {
      let n = 0, shift = 0, b;
      do {
        b = wasm[r.at++];
        n |= (b & 0x7f) << shift;
        shift += 7;
      } while (b & 0x80);
      return shift < 32 && b & 0x40 ? n | (-1 << shift) : n;
    },
  };
  return r;
}

/** The module's sections, in order: `{ id, start, at, end }`, where `start`
 * is the section's first byte, and its body runs from `at` to `end`. */
export function* sections(wasm) {
  const r = reader(wasm);
  while (r.at < wasm.length) {
    const start = r.at;
    const id = wasm[r.at++];
    const size = r.u();
    yield { id, start, at: r.at, end: r.at + size };
    r.at += size;
  }
}

/** `n` as an unsigned LEB128. */
export function uleb(n) {
  const out = [];
  do {
    out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>>= 7;
  } while (n);
  return Buffer.from(out);
}
