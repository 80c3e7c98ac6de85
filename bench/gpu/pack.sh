#!/usr/bin/env bash
# Packs what the GPU machine lacks into .gpubench/ (git-ignored through .git/info/exclude; carry it
# with the device tool): a compressed Node binary, the benchmark bundled with esbuild, koffi's
# loader and Linux x64 native module, CRIU's private prefix, and the fake libcuda for dry runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PATH="$PWD/.torpor/node/bin:$PWD/node_modules/.bin:$PATH"
out=.gpubench
grep -qxF "/$out/" .git/info/exclude || echo "/$out/" >>.git/info/exclude
mkdir -p "$out/node_modules/koffi/build/koffi/linux_x64"
esbuild bench/gpu/gpu-checkpoint-bench.ts --bundle --platform=node --format=esm --target=node22 \
  --external:koffi --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" \
  --outfile="$out/bench.mjs" --log-level=warning
cp node_modules/koffi/package.json node_modules/koffi/index.js "$out/node_modules/koffi/"
cp node_modules/koffi/build/koffi/linux_x64/koffi.node "$out/node_modules/koffi/build/koffi/linux_x64/"
[ -f "$out/node.xz" ] && [ "$out/node.xz" -nt .torpor/node/bin/node ] || xz -T0 -6 -c .torpor/node/bin/node >"$out/node.xz"
# Packed again whenever the set-up installed another CRIU (its stamp is newer than the pack).
[ -f "$out/criu.tar.xz" ] && [ "$out/criu.tar.xz" -nt .torpor/stamps/criu ] || tar -C .torpor -cJf "$out/criu.tar.xz" criu
cc -shared -fPIC -o "$out/libfakecuda.so" test/support/fake-libcuda.c
du -sh "$out"
