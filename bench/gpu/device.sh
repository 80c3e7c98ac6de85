#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with .gpubench/ carried (bench/gpu/pack.sh):
# unpacks Node and CRIU, builds the random-weights model, runs the benchmark, copies what it made
# to $OUT. BENCH_MODEL_SCALE=tiny for a smoke run; DRY_RUN=1 on a machine without a GPU.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-/tmp/gpubench-out}
mkdir -p "$OUT"
T=${BENCH_TMP:-/var/tmp/torpor-gpu}
mkdir -p "$T"
[ -x "$T/node" ] || xz -dc .gpubench/node.xz >"$T/node" && chmod +x "$T/node"
# A CRIU unpacked by an earlier call is replaced when the carried pack is newer (another version).
[ -d "$T/criu" ] && [ "$T/criu" -nt .gpubench/criu.tar.xz ] || { rm -rf "$T/criu" && tar -C "$T" -xJf .gpubench/criu.tar.xz && touch "$T/criu"; }
cat >"$T/criu-wrapper" <<WRAP
#!/bin/sh
exec "$T/criu/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$T/criu/usr/lib/x86_64-linux-gnu" "$T/criu/usr/sbin/criu" "\$@"
WRAP
chmod +x "$T/criu-wrapper"
export TORPOR_CRIU="$T/criu-wrapper"
"$TORPOR_CRIU" --version | head -1
# The agent needs CRIU 4.2 or newer (4.1 cannot dump a process holding an inet socket on Linux 6.18).
"$TORPOR_CRIU" --version | grep -qE 'Version: (4\.([2-9]|[1-9][0-9])|[5-9])' || { echo "CRIU older than 4.2 in the pack" >&2; exit 1; }
"$TORPOR_CRIU" check 2>&1 | tail -1
if [ -n "${DRY_RUN:-}" ]; then
  export FAKE_LIBCUDA_DIR="$T/fakecuda" TORPOR_LIBCUDA="$PWD/.gpubench/libfakecuda.so" BENCH_APP="python3 bench/gpu/dry_run_app.py"
  mkdir -p "$FAKE_LIBCUDA_DIR"
else
  nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv
  lib=$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')
  [ -n "$lib" ] || lib=$(find / -name 'libcuda.so.1' -not -path '*/proc/*' 2>/dev/null | head -1)
  export TORPOR_LIBCUDA="$lib"
  echo "libcuda: $lib"
  df -h "$T" | tail -1
  export BENCH_MODEL_DIR="$T/model-${BENCH_MODEL_SCALE:-3b}"
  # One process tree for CRIU: inductor compiles in the server process, not in a worker pool.
  export TORCHINDUCTOR_COMPILE_THREADS=1 PYTHONUNBUFFERED=1
  [ -f "$BENCH_MODEL_DIR/config.json" ] || python3 bench/gpu/make_model.py "$BENCH_MODEL_DIR" 2>&1 | tail -3
fi
export BENCH_WORK_DIR="$T/work"
set -o pipefail
timeout "${BENCH_TIMEOUT_S:-480}" "$T/node" .gpubench/bench.mjs 2>&1 | tee "$OUT/bench-${BENCH_MODEL_SCALE:-3b}.log"
rc=$?
run="$BENCH_WORK_DIR/run"
cp "$BENCH_WORK_DIR/results.json" "$OUT/results-${BENCH_MODEL_SCALE:-3b}.json" 2>/dev/null
{
  for f in "$run/app.log" "$run/restore/app.log" "$run/init.json"; do echo "== $f"; tail -c 20000 "$f" 2>/dev/null; done
  for f in "$run/checkpoint/dump.log" "$run/restore/restore.log"; do echo "== $f (errors and last lines)"; grep -E 'Error|error|Warn' "$f" 2>/dev/null | tail -40; tail -15 "$f" 2>/dev/null; done
} >"$OUT/logs-${BENCH_MODEL_SCALE:-3b}.txt"
exit $rc
