// How scripts/build-client bundles the core, channel-wasm/js/index.js with
// io.js, into the package's index.js: one minified ES module.
//
// Besides the variables, the minifier renames the properties named in
// PRIVATE: those of a channel's JS side (io.js `Callbacks(h, token)`) that
// only index.js and io.js read or write. Everything else keeps its name:
// the public API, the options, the wasm's imports and exports, the frames'
// fields, and the callbacks' parts that share.js uses (`state`, `listen`,
// `call`, `report`, `now`), for share.js is built on its own. So that a
// name is never renamed on one side and read by the other, loading this
// file fails when share.js or persist.js reads one of them.
import { readFileSync } from 'node:fs';

const PRIVATE = ['thrown', 'answer', 'settle', 'handle', 'handler', 'closed', 'timer'];

for (const file of ['share.js', 'persist.js']) {
  const source = readFileSync(new URL(`./js/${file}`, import.meta.url), 'utf8');
  const used = PRIVATE.filter((name) => new RegExp(`\\.${name}\\b`).test(source));
  if (used.length) throw Error(`rolldown.config.mjs: js/${file} reads ${used.join(', ')}, renamed in index.js`);
}

export default {
  input: 'channel-wasm/js/index.js',
  logLevel: 'warn',
  output: {
    file: 'channel-wasm/pkg/index.js',
    format: 'esm',
    // No `/* @__PURE__ */` annotations left by the minifier: an app's
    // bundler needs none (package.json says `sideEffects: false`).
    comments: false,
    minify: { mangleProps: { include: new RegExp(`^(${PRIVATE.join('|')})$`) } },
  },
};
