// Usage: node scripts/wasm-short-names.mjs GLUE.js MAP.json
// Rewrites wasm-bindgen's glue to match a module that went through
// `wasm-opt --minify-imports-and-exports-and-modules` (scripts/build-client),
// which wrote MAP.json: every import then comes from module `a` under a
// one- or two-letter name, and every export has one too.
//
// Why: wasm-bindgen names each import `./eventwire_channel_bg.js` +
// `__wbg_<name>_<16 hex digits>`. The hashes do not compress, and each name
// is written twice, once in the .wasm and once in the JS: about 1.5 KB of
// the gzipped package. The glue is rewritten in three places: the keys of
// its import object, the object it hands to WebAssembly (one module, `a`),
// and every `wasm.<export>`. Any name left over fails the build.
import { readFileSync, writeFileSync } from 'node:fs';

const [glueFile, mapFile] = process.argv.slice(2);
let glue = readFileSync(glueFile, 'utf8');
// wasm-opt prints the map once per pass that ran it; the first is the real one.
const text = readFileSync(mapFile, 'utf8');
const map = JSON.parse(text.slice(0, text.indexOf('\n}') + 2));
const fail = (why) => {
  console.error(`wasm-short-names: ${why}`);
  process.exit(1);
};

// The object the glue returns from __wbg_get_imports: module name -> variable.
const returned = /return \{\s*__proto__: null,\s*((?:"[^"]+": import\d+,\s*)+)\};/;
const found = glue.match(returned);
if (!found) fail('the glue no longer returns its imports the way this script expects');
const moduleVar = Object.fromEntries([...found[1].matchAll(/"([^"]+)": (import\d+)/g)].map((m) => [m[1], m[2]]));
const own = Object.keys(moduleVar).find((m) => m.endsWith('_bg.js'));
if (!own) fail('no ./<name>_bg.js import module in the glue');

// Imports from the glue's own object are renamed where they are defined;
// imports straight from a snippet module are added to that object.
const extra = [];
for (const [module, name, short] of map.imports) {
  if (!(module in moduleVar)) fail(`import module ${module} is not in the glue`);
  if (module === own) {
    const key = new RegExp(`(\\n\\s*)${name}(: function)`);
    if (!key.test(glue)) fail(`import ${name} is not defined in the glue`);
    glue = glue.replace(key, `$1${short}$2`);
  } else {
    extra.push(`${short}: ${moduleVar[module]}.${name}`);
  }
}
glue = glue.replace(returned, `return { a: Object.assign(${moduleVar[own]}, { ${extra.join(', ')} }) };`);

const exports = Object.fromEntries(map.exports);
glue = glue.replace(/\bwasm\.(\w+)/g, (whole, name) => {
  if (!(name in exports)) fail(`the glue uses export ${name}, which the module does not have`);
  return `wasm.${exports[name]}`;
});
writeFileSync(glueFile, glue);
