#!/usr/bin/env bash
# Why CRIU "Can't bind inet socket: Address already in use" on a TP=2 job's restore, without a GPU:
# dumps and restores socket_shape.py (a launcher with a store listener and 2 ranks, each holding a
# listener on port P and the accepted connection on the same P) with the node agent's CRIU options
# (activities/node/criu/args.ts), in five cases, on this host's network namespace. Run as root.
# Usage: bash bench/gpu/tp2/socket-criu.sh [work dir (/tmp/torpor-socket-criu)]; TORPOR_CRIU picks CRIU.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=${1:-/tmp/torpor-socket-criu}
CRIU=${TORPOR_CRIU:-$here/../../../.torpor/bin/criu}
LOCK=(--network-lock nftables)
"$CRIU" --version | head -1

# case NAME "dump options" "restore options" SECONDS_BEFORE_RESTORE|kill-time-wait [env for the app]
case_() {
  local d=$work/$1 dumpopts=$2 restoreopts=$3 wait_s=$4
  shift 4
  rm -rf "$d" && mkdir -p "$d/img" && cd "$d" || return 1
  env "$@" setsid --fork python3 "$here/socket_shape.py" "$d/ready" "$d/result" </dev/null >"$d/app.log" 2>&1
  for _ in $(seq 100); do [ -s "$d/ready" ] && break; sleep 0.1; done
  local pid
  pid=$(pgrep -f "socket_shape.py $d/ready" | head -1)
  echo "ports: $(grep -o 'listener [0-9]*' ready | tr '\n' ' ')"
  # shellcheck disable=SC2086
  "$CRIU" dump --tree "$pid" --images-dir img --work-dir img --log-file dump.log -v4 $dumpopts "${LOCK[@]}" --file-locks --ext-unix-sk
  echo "dump rc=$?"
  # What a ChReK app does once it sees the signal file (a `keep` dump has already killed it).
  kill -TERM -- "-$pid" 2>/dev/null
  for _ in $(seq 100); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
  local ports
  ports=$(sed -n 's/.*listener \([0-9]*\).*/\1/p' ready | while read -r p; do printf ':%04X |' "$p"; done)
  echo "TCP sockets left on those ports (state 06 = TIME_WAIT):"
  grep -E "${ports%|}" /proc/net/tcp | awk '{print "  local", $2, "remote", $3, "state", $4}'
  if [ "$wait_s" = kill-time-wait ]; then
    # SOCK_DESTROY of the TIME_WAIT remnants on the listeners' ports (CAP_NET_ADMIN; iproute2's ss -K).
    for p in $(sed -n 's/.*listener \([0-9]*\).*/\1/p' ready); do ss -K -tan state time-wait "( sport = :$p )" | tail -n +2 | sed 's/^/  destroyed: /'; done
  elif [ "$wait_s" -gt 0 ]; then
    echo "waiting ${wait_s} s" && sleep "$wait_s"
  fi
  # shellcheck disable=SC2086
  "$CRIU" restore --images-dir img --work-dir img --log-file restore.log -v4 --restore-detached --pidfile "$d/pid" $restoreopts "${LOCK[@]}" --file-locks --ext-unix-sk
  echo "restore rc=$?"
  grep -B1 "Can't bind" img/restore.log | grep 'Restore:' | head -2
  grep -E 'Error' img/restore.log | grep -v RLIMIT_NOFILE | head -4
  if [ -s "$d/pid" ]; then
    touch "$d/ready.restored"
    sleep 1.5
    grep echo "$d/result" 2>/dev/null || echo "no echo over the restored connections (closed, as --tcp-close restores them)"
    kill -KILL -- "-$(cat "$d/pid")" 2>/dev/null
  fi
}

echo "== A: agent policy keep (dump kills the tree with its connections in repair mode)"
case_ A "--tcp-established" "--tcp-established" 0
echo "== B: --leave-running --tcp-established, the original then exits"
case_ B "--leave-running --tcp-established" "--tcp-established" 0
echo "== C: agent policy close (--leave-running --tcp-close), the original then exits"
case_ C "--leave-running --tcp-close" "--tcp-close" 0
echo "== D: as C, restored 61 s later (TIME_WAIT lasts 60 s)"
case_ D "--leave-running --tcp-close" "--tcp-close" 61
echo "== E: as C, the app sets SO_REUSEADDR on every socket"
case_ E "--leave-running --tcp-close" "--tcp-close" 0 SOCKET_SHAPE_REUSEADDR=1
echo "== F: as B, the TIME_WAIT sockets on the listeners' ports destroyed (ss -K) before the restore"
case_ F "--leave-running --tcp-established" "--tcp-established" kill-time-wait
