#!/usr/bin/env bash
# Builds the size probe with the given features (none, swb or gloo) and
# prints its wasm and bundled JS, gzip -9, as scripts/build-client counts.
# Needs wasm-bindgen-cli on PATH at the version of the probe's
# wasm-bindgen (`cargo install wasm-bindgen-cli --version 0.2.130`): the
# package itself no longer uses wasm-bindgen, so install-tools does not
# install it.
set -euo pipefail
cd "$(dirname "$0")"
REPO="$(cd ../.. && pwd)"
export PATH="$REPO/.tools/bin:$REPO/node_modules/.bin:$PATH"
feat=${1:-}
cargo build --release --target wasm32-unknown-unknown ${feat:+--features $feat} -q 2>&1 | grep -v "^warning" | head -5 || true
rm -rf out && mkdir out
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir out target/wasm32-unknown-unknown/release/eventwire_size_probe.wasm
wasm-opt -Oz --converge --strip-debug --strip-producers out/eventwire_size_probe_bg.wasm -o out/eventwire_size_probe_bg.wasm
cat > out/entry.js <<'JS'
import init, * as p from './eventwire_size_probe.js';
export { init, p };
JS
rolldown out/entry.js --file out/bundle.js --format esm --minify --log-level warn
w=$(gzip -9c out/eventwire_size_probe_bg.wasm | wc -c); j=$(gzip -9c out/bundle.js | wc -c)
echo "${feat:-base}: wasm $(wc -c <out/eventwire_size_probe_bg.wasm) B ($w B gzip), JS $(wc -c <out/bundle.js) B ($j B gzip); total $((w + j)) B gzip"
