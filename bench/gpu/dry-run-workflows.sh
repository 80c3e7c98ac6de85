#!/usr/bin/env bash
# The device run, rehearsed on a machine without a GPU: copies what a device call carries (the files
# git tracks or would, plus one pack at a time) into a fresh directory and runs
# bench/gpu/device-workflows.sh there twice, as the two calls do, with DRY_RUN=1 and a PATH without
# the repo's Node, so that only the packs' contents can make it pass. Run pack-workflows.sh first.
# Usage: bash bench/gpu/dry-run-workflows.sh [dir (/var/tmp/torpor-gpuflow-dry)]; BENCH_PHASES as on the device.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
dir=${1:-/var/tmp/torpor-gpuflow-dry}
rm -rf "$dir" && mkdir -p "$dir/repo" "$dir/out"
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$dir/repo" 2>/dev/null || true
passed=()
for v in BENCH_CRIU BENCH_PAGE_WRITE_MIB BENCH_IMAGE_READ BENCH_WARM_RESTORE BENCH_LOCAL_RESTORE_GPUS BENCH_TP2_RUNS BENCH_TP2_RESTORE_GPUS BENCH_TP2_RESTORE_DELAY_S; do [ -n "${!v:-}" ] && passed+=("$v=${!v}"); done
run() { (cd "$dir/repo" && env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin OUT="$dir/out" \
  BENCH_TMP="$dir/vartmp" DRY_RUN=1 BENCH_PHASES="${BENCH_PHASES:-local,container}" "${passed[@]}" "$@"); }
cp -r .gpuflow-server "$dir/repo/"
run BENCH_UNPACK_ONLY=1 bash bench/gpu/device-workflows.sh
rm -rf "$dir/repo/.gpuflow-server" && cp -r .gpuflow "$dir/repo/"
run BENCH_TIMEOUT_S="${BENCH_TIMEOUT_S:-300}" bash bench/gpu/device-workflows.sh
