#!/usr/bin/env bash
# Warm-cache CRIU restore of a process with MB MiB of private anonymous memory (issue 16).
# Run under the shared lock: flock /tmp/torpor-vitest.lock bash bench/criu-page-restore.sh [MB] [CRIU]
# HOG_THP=1 makes the hog madvise(MADV_HUGEPAGE) its memory; the patched CRIU
# (tools/criu-parallel/build.sh) reads CRIU_PARALLEL_READERS and CRIU_PARALLEL_THP.
# After each restore the hog checks every word of its memory (SIGUSR1) and the run fails if one is wrong.
set -euo pipefail
MB=${1:-2048}
CRIU=${2:-$(dirname "$0")/../.torpor/bin/criu}
DIR=$(mktemp -d /tmp/criu-page-restore.XXXX)
trap 'rm -rf "$DIR"' EXIT
cc -O2 -o "$DIR/hog" "$(dirname "$0")/../tools/criu-parallel/hog.c"
mkdir -p "$DIR/img"
setsid "$DIR/hog" "$MB" "$DIR/ready" ${HOG_THP:+thp} </dev/null >/dev/null 2>&1 &
PID=$!
while [ ! -e "$DIR/ready" ]; do sleep 0.1; done
"$CRIU" dump --tree "$PID" --images-dir "$DIR/img" --work-dir "$DIR/img" --log-file dump.log -v4 --file-locks
echo "pages image: $(du -b "$DIR"/img/pages-*.img | awk '{s+=$1} END {printf "%.3f GB", s/1e9}')"
for run in 1 2 3; do
  cat "$DIR"/img/pages-*.img >/dev/null # the image in the page cache, as for a second replica
  thp0=$(awk '/^(thp_fault_alloc|thp_fault_fallback|compact_stall) /{printf "%s ", $2} END {print ""}' /proc/vmstat)
  t0=$(date +%s.%N)
  if ! "$CRIU" restore --manage-cgroups=ignore --images-dir "$DIR/img" --work-dir "$DIR/img" --log-file "restore$run.log" \
    -v4 --restore-detached --pidfile "$DIR/pid$run" --file-locks; then
    grep -E 'Error' "$DIR/img/restore$run.log" | tail -5
    exit 1
  fi
  t1=$(date +%s.%N)
  log="$DIR/img/restore$run.log"
  first=$(grep -m1 'Preadv' "$log" | sed -E 's/^\(([0-9.]+)\).*/\1/')
  last=$(grep 'returned' "$log" | tail -1 | sed -E 's/^\(([0-9.]+)\).*/\1/')
  end=$(grep -E 'Restore finished successfully|Restoring FINISHED' "$log" | tail -1 | sed -E 's/^\(([0-9.]+)\).*/\1/')
  bytes=$(du -b "$DIR"/img/pages-*.img | awk '{s+=$1} END {print s}')
  awk -v w="$(echo "$t1 - $t0" | bc)" -v a="$first" -v b="$last" -v e="$end" -v n="$bytes" -v r="$run" 'BEGIN {
    printf "restore %d: wall %.3f s (%.2f GB/s); CRIU log end %.3f s (%.2f GB/s); preadv span %.3f s (%.2f GB/s)\n",
      r, w, n/1e9/w, e, n/1e9/e, b-a, n/1e9/(b-a) }'
  read -r c0 a0 f0 <<<"$thp0"
  read -r c1 a1 f1 < <(awk '/^(thp_fault_alloc|thp_fault_fallback|compact_stall) /{printf "%s ", $2} END {print ""}' /proc/vmstat)
  echo "  huge pages faulted in: $((a1 - a0)), fallbacks to 4 KiB: $((f1 - f0)), direct compactions: $((c1 - c0)) (/proc/vmstat, whole machine)"
  rm -f "$DIR"/ready.ok "$DIR"/ready.bad
  kill -USR1 "$(cat "$DIR/pid$run")"
  while [ ! -e "$DIR/ready.ok" ] && [ ! -e "$DIR/ready.bad" ]; do sleep 0.1; done
  sleep 0.1
  echo "  memory check: $(cat "$DIR"/ready.ok "$DIR"/ready.bad 2>/dev/null) ($(basename "$DIR"/ready.[ob]* | cut -d. -f2))"
  [ -e "$DIR/ready.ok" ] || exit 1
  kill -9 "$(cat "$DIR/pid$run")"
  while kill -0 "$(cat "$DIR/pid$run")" 2>/dev/null; do sleep 0.05; done
done
if [ -n "${KEEP:-}" ]; then cp -r "$DIR/img" "$KEEP"; fi
