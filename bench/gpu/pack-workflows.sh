#!/usr/bin/env bash
# Packs what the GPU machine lacks to run the real workflows there (bench/gpu/device-workflows.sh),
# in two carries of the device tool, each well under its 64 MiB (git-ignored through .git/info/exclude):
#   .gpuflow-server/  the Temporal CLI (dev server), built stripped (-s -w) from its Go module and xz'd
#   .gpuflow/         Node (xz), the node agent, control worker and runner bundled by esbuild with the
#                     prebuilt workflow code (js.tar.xz), core-bridge's native module (xz), koffi, CRIU's
#                     and runc's private prefixes, torpor-no-io-uring, and the fake libcuda for dry runs.
# Each part is rebuilt only when its source is newer. Prints both carries' sizes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PATH="$PWD/.torpor/node/bin:$PWD/node_modules/.bin:$PATH"
# shellcheck source=../../scripts/versions.sh
source scripts/versions.sh
server=.gpuflow-server
flow=.gpuflow
for d in "$server" "$flow"; do grep -qxF "/$d/" .git/info/exclude || echo "/$d/" >>.git/info/exclude; done
mkdir -p "$server" "$flow" .torpor/gpuflow
[ -x .torpor/runc/usr/sbin/runc ] || { echo "no .torpor/runc: TORPOR_SETUP_KUBE=1 bash scripts/setup.sh installs runc (npm test does too)" >&2; exit 1; }

# The set-up's CLI is 252 MB (49 MB xz'd); stripped of symbols and DWARF it packs to about half that.
cli=".torpor/gpuflow/temporal-$TORPOR_TEMPORAL_CLI_VERSION"
if [ ! -x "$cli" ]; then
  GOBIN="$PWD/.torpor/gpuflow/gobin" GOFLAGS=-buildvcs=false go install -trimpath -ldflags "-s -w" \
    "github.com/temporalio/cli/cmd/temporal@$TORPOR_TEMPORAL_CLI_VERSION"
  mv .torpor/gpuflow/gobin/temporal "$cli"
fi
[ "$server/temporal.xz" -nt "$cli" ] || xz -9 -T0 -c "$cli" >"$server/temporal.xz"

js=.torpor/gpuflow/js
rm -rf "$js" && mkdir -p "$js/node_modules/koffi/build/koffi/linux_x64"
tsx bench/gpu/pack-bundles.ts "$js"
cp node_modules/koffi/package.json node_modules/koffi/index.js "$js/node_modules/koffi/"
cp node_modules/koffi/build/koffi/linux_x64/koffi.node "$js/node_modules/koffi/build/koffi/linux_x64/"
tar -C .torpor/gpuflow -cf - js | xz -6 -T0 >"$flow/js.tar.xz"

# The bundles load core-bridge's native module from releases/<target>/ beside them (its own loader's path).
bridge=node_modules/@temporalio/core-bridge/releases/x86_64-unknown-linux-gnu/index.node
[ "$flow/index.node.xz" -nt "$bridge" ] || xz -9 -T0 -c "$bridge" >"$flow/index.node.xz"
[ "$flow/node.xz" -nt .torpor/node/bin/node ] || xz -T0 -6 -c .torpor/node/bin/node >"$flow/node.xz"
[ "$flow/criu.tar.xz" -nt .torpor/stamps/criu ] || tar -C .torpor -cJf "$flow/criu.tar.xz" criu
# CRIU with our parallel page restore and write, the set-up's default .torpor/bin/criu (tools/criu-parallel/build.sh;
# not built under TORPOR_CRIU_PARALLEL=0): runs on sid's loader and libraries.
par=.torpor/criu-parallel/usr/sbin/criu
# Its libraries are bookworm's (tools/criu-parallel/deps), found there through its RUNPATH; packed beside it,
# less those only the build used (C++ protobuf served protoc; CRIU links libcrypto, not libssl), as the image does.
if [ -x "$par" ] && ! [ "$flow/criu-parallel.tar.xz" -nt "$par" ]; then
  tar -C .torpor/criu-parallel -cJhf "$flow/criu-parallel.tar.xz" usr/sbin/criu \
    $(cd .torpor/criu-parallel && ls deps/usr/lib/x86_64-linux-gnu/*.so.* deps/lib/x86_64-linux-gnu/*.so.* 2>/dev/null |
      grep -vE '/lib(protobuf|protobuf-lite|protoc|ssl)\.so')
fi
# runc 1.1.5 and its libseccomp (the GPU machine has no container runtime).
[ "$flow/runc.tar.xz" -nt .torpor/runc/usr/sbin/runc ] ||
  tar -C .torpor/runc -cJf "$flow/runc.tar.xz" usr/sbin/runc $(cd .torpor/runc && ls usr/lib/x86_64-linux-gnu/libseccomp.so*)
cp .torpor/bin/torpor-no-io-uring "$flow/"
cc -shared -fPIC -o "$flow/libfakecuda.so" test/support/fake-libcuda.c
cc -O2 -o "$flow/page-write-bench" tools/criu-parallel/page-write-bench.c -lpthread
du -sh "$server" "$flow"
