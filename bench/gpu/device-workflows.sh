#!/usr/bin/env bash
# Runs the real checkpoint and restore workflows on the GPU machine (bench/gpu/workflow-bench.ts),
# from the repository root: a Temporal dev server, the control worker and the node agent, all from
# the carried packs (bench/gpu/pack-workflows.sh), then the runner; results and logs go to $OUT.
#
# How to run (device tool; the machine stays warm 30 s after a call, with /var/tmp):
#   here:   bash bench/gpu/pack-workflows.sh
#   call 1: carry [".gpuflow-server"], command: BENCH_UNPACK_ONLY=1 bash bench/gpu/device-workflows.sh
#   call 2 (within 30 s): carry [".gpuflow"], command:
#           BENCH_MODEL_SCALE=3b BENCH_PHASES=local,container BENCH_TIMEOUT_S=540 bash bench/gpu/device-workflows.sh
#   TP=2 job (bench/gpu/tp2/, flow-tp2.ts) instead, call 2: BENCH_MODEL_SCALE=tp2 BENCH_PHASES=tp2
#           BENCH_TP2_RUNS="cooperative:close transparent-net:keep:same" BENCH_TP2_RESTORE_GPUS="same;1,0"
#           BENCH_TP2_NCCL_ENV="NCCL_RAS_ENABLE=0" [BENCH_TP2_RESTORE_DELAY_S=62] bash bench/gpu/device-workflows.sh
#           (transparent-net needs TORPOR_CRIU_DUMP_ARGS="--ext-unix-sk --ghost-limit 1G"; see RESULTS.md)
# Each pack is unpacked into $BENCH_TMP (/var/tmp/torpor-gpu) only when missing or older than the
# carried one, so call 2 finds the server call 1 unpacked. DRY_RUN=1: no GPU (fake libcuda, fake
# nvidia-smi, bench/gpu/dry_run_app.py); BENCH_MODEL_SCALE=tiny for a smoke run; BENCH_KEEP=1
# leaves the server and workers running after the runner.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO=$PWD
OUT=${OUT:-/tmp/gpuflow-out}
T=${BENCH_TMP:-/var/tmp/torpor-gpu}
SCALE=${BENCH_MODEL_SCALE:-3b}
mkdir -p "$OUT" "$T/stamps" "$T/bin"
chmod 755 "$T"

# unpack NAME CARRIED COMMAND...: runs COMMAND when CARRIED is newer than what an earlier call unpacked.
unpack() {
  local name=$1 carried=$2
  shift 2
  [ -e "$carried" ] || return 0
  [ -e "$T/stamps/$name" ] && [ "$T/stamps/$name" -nt "$carried" ] && return 0
  "$@" && touch "$T/stamps/$name" && echo "unpacked $name"
}
unpack temporal .gpuflow-server/temporal.xz sh -c "xz -dc .gpuflow-server/temporal.xz >'$T/temporal' && chmod +x '$T/temporal'"
unpack node .gpuflow/node.xz sh -c "xz -dc .gpuflow/node.xz >'$T/node' && chmod +x '$T/node'"
unpack js .gpuflow/js.tar.xz sh -c "rm -rf '$T/js' && tar -C '$T' -xJf .gpuflow/js.tar.xz && rm -f '$T/stamps/bridge'"
unpack bridge .gpuflow/index.node.xz sh -c "mkdir -p '$T/js/releases/x86_64-unknown-linux-gnu' && xz -dc .gpuflow/index.node.xz >'$T/js/releases/x86_64-unknown-linux-gnu/index.node'"
unpack criu .gpuflow/criu.tar.xz sh -c "rm -rf '$T/criu' && tar -C '$T' -xJf .gpuflow/criu.tar.xz"
unpack criu-parallel .gpuflow/criu-parallel.tar.xz sh -c "rm -rf '$T/criu-parallel' && mkdir -p '$T/criu-parallel' && tar -C '$T/criu-parallel' -xJf .gpuflow/criu-parallel.tar.xz"
unpack runc .gpuflow/runc.tar.xz sh -c "rm -rf '$T/runc' && mkdir -p '$T/runc' && tar -C '$T/runc' -xJf .gpuflow/runc.tar.xz"
unpack tools .gpuflow/torpor-no-io-uring sh -c "cp .gpuflow/torpor-no-io-uring .gpuflow/libfakecuda.so '$T/bin/'"
[ -n "${BENCH_UNPACK_ONLY:-}" ] && exit 0
for f in temporal node js/node-agent.mjs js/releases/x86_64-unknown-linux-gnu/index.node criu runc bin/torpor-no-io-uring; do
  [ -e "$T/$f" ] || { echo "missing $T/$f: carry .gpuflow-server in call 1 and .gpuflow in call 2 (bench/gpu/pack-workflows.sh)" >&2; exit 2; }
done

# BENCH_CRIU=parallel (the default, as on hosts the set-up prepared): CRIU 4.2.1 with our parallel
# page restore (tools/criu-parallel/), on the same libraries; BENCH_CRIU=stock: Debian's.
criu_bin=$T/criu/usr/sbin/criu criu_libs=$T/criu/usr/lib/x86_64-linux-gnu
if [ "${BENCH_CRIU:-parallel}" = parallel ]; then
  criu_bin=$T/criu-parallel/usr/sbin/criu
  criu_libs=$T/criu-parallel/deps/usr/lib/x86_64-linux-gnu:$T/criu-parallel/deps/lib/x86_64-linux-gnu:$criu_libs
fi
[ -x "$criu_bin" ] || { echo "BENCH_CRIU=${BENCH_CRIU:-parallel}: $criu_bin missing (tools/criu-parallel/build.sh, then pack-workflows.sh)" >&2; exit 2; }
cat >"$T/bin/criu" <<WRAP
#!/bin/sh
exec "$T/criu/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$criu_libs" "$criu_bin" "\$@"
WRAP
cat >"$T/bin/runc" <<WRAP
#!/bin/sh
exec env LD_LIBRARY_PATH="$T/runc/usr/lib/x86_64-linux-gnu" "$T/runc/usr/sbin/runc" "\$@"
WRAP
chmod +x "$T/bin/criu" "$T/bin/runc"
export PATH="$T/bin:$PATH"
criu --version | head -1
criu check 2>&1 | tail -1
runc --version | head -1

RUN=$T/run
PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  umount -l "$RUN/containers" 2>/dev/null
}
[ -n "${BENCH_KEEP:-}" ] || trap stop_all EXIT
source bench/gpu/device-workflows-env.sh
# BENCH_PAGE_WRITE_MIB=N: first, the dump's page write modelled outside CRIU (tools/criu-parallel/page-write-bench.c).
if [ -n "${BENCH_PAGE_WRITE_MIB:-}" ] && [ -x .gpuflow/page-write-bench ]; then
  .gpuflow/page-write-bench "$T/page-write-bench.img" "$BENCH_PAGE_WRITE_MIB" splice copy write direct direct4 mmap4 splice copy 2>&1 | tee "$OUT/page-write.txt"
fi
start_services || exit 3

set -o pipefail
timeout "${BENCH_TIMEOUT_S:-540}" "$T/node" "$T/js/workflow-bench.mjs" 2>&1 | tee "$OUT/flow-$SCALE.log"
rc=$?
cp "$OUT/flow-results.json" "$OUT/flow-results-$SCALE.json" 2>/dev/null && rm -f "$OUT/flow-results.json"
{
  for f in "$RUN/temporal.log" "$RUN/control.log" "$RUN/agent.log" "$RUN"/containers/*.log; do echo "== $f"; tail -c 8000 "$f" 2>/dev/null; done
  for f in $(find "$RUN/store" -name '*.log' 2>/dev/null | head -20); do echo "== $f (errors and last lines)"; grep -E 'Error|error' "$f" | tail -20; tail -15 "$f"; done
} >"$OUT/flow-logs-$SCALE.txt" 2>&1
# CRIU's dump and restore logs (-v4, timestamped): where each spent its time (page I/O, the gate).
find "$RUN/store" \( -name restore.log -o -name dump.log \) -print0 2>/dev/null | tar -cJf "$OUT/criu-restore-logs-$SCALE.tar.xz" --null -T - 2>/dev/null
# Each phase reads its pages image back (one buffered reader) for the table's second restore bound;
# BENCH_IMAGE_READ=0 skips that. BENCH_IMAGE_READ=all: then the largest pages image the run left, read
# back from a cold page cache in the other ways a restore could read it (O_DIRECT, four readers).
image_read() {
  local img=$1 size mib=$((64 << 20)) blocks quarter t0 i
  size=$(stat -c %s "$img")
  blocks=$(((size + mib - 1) / mib))
  quarter=$(((blocks + 3) / 4))
  cold() { sync && echo 3 >/proc/sys/vm/drop_caches; }
  rate() { awk -v b="$size" -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.2f GB/s (%.2f s)\n", b / (t1 - t0) / 1e9, t1 - t0 }'; }
  echo "image read-back: $img, $size bytes, page cache dropped before each"
  for flags in iflag=direct ""; do
    cold && t0=$(date +%s.%N) && dd if="$img" of=/dev/null bs=64M $flags 2>/dev/null
    echo "one reader, 64 MiB, ${flags:-buffered}: $(rate "$t0")"
    cold && t0=$(date +%s.%N)
    for i in 0 1 2 3; do dd if="$img" of=/dev/null bs=64M skip=$((i * quarter)) count=$quarter $flags 2>/dev/null & done
    wait
    echo "four readers, a quarter each, 64 MiB, ${flags:-buffered}: $(rate "$t0")"
  done
}
if [ "${BENCH_IMAGE_READ:-}" = all ]; then
  img=$(find "$RUN/store" -path '*/images/pages-*.img' -printf '%s %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)
  [ -n "$img" ] && image_read "$img" 2>&1 | tee "$OUT/image-read.txt"
fi
exit $rc
