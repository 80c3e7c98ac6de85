#!/usr/bin/env bash
# Restores a two-process tree, each process with two threads and its own large anonymous buffer
# (different sizes, so CRIU reads both in place rather than premapping them as COW-shared), with the
# patched CRIU: the parallel readers of both processes run while CRIU still restores exact TIDs.
# Passes when every PID and TID came back and each process's sha256 of its buffer still matches.
# usage: bash tools/criu-parallel/tree-check.sh [CRIU]
set -euo pipefail
CRIU=${1:-$(dirname "$0")/../../.torpor/bin/criu-parallel}
DIR=$(mktemp -d /tmp/criu-tree-check.XXXX)
trap 'kill -9 $(cut -d" " -f1 "$DIR"/*.ready 2>/dev/null) 2>/dev/null; rm -rf "$DIR"' EXIT
cat >"$DIR/tree.py" <<'EOF'
import hashlib, os, signal, sys, threading, time
os.closerange(3, 1024)
out = sys.argv[1]
def work(tag, mib):
    buf = bytearray(os.urandom(1 << 20) * mib)
    digest = hashlib.sha256(buf).hexdigest()
    ts = [threading.Thread(target=lambda: time.sleep(1e6), daemon=True) for _ in range(2)]
    for t in ts: t.start()
    tids = sorted(t.native_id for t in ts)
    def check(*_):
        now = sorted(int(t) for t in os.listdir('/proc/self/task') if int(t) != os.getpid())
        ok = now == tids and hashlib.sha256(buf).hexdigest() == digest
        with open(f'{out}/{tag}.{"ok" if ok else "bad"}', 'w') as f: f.write(f'{tag} {os.getpid()} {now}\n')
    signal.signal(signal.SIGUSR1, check)
    with open(f'{out}/{tag}.ready', 'w') as f: f.write(f'{os.getpid()} {tids}\n')
    while True: time.sleep(3600)
if os.fork() == 0: work('child', 264)
work('parent', 200)
EOF
mkdir "$DIR/img"
setsid python3 "$DIR/tree.py" "$DIR" </dev/null >/dev/null 2>&1 &
until [ -e "$DIR/parent.ready" ] && [ -e "$DIR/child.ready" ]; do sleep 0.2; done
cat "$DIR"/*.ready
"$CRIU" dump -t "$(cut -d' ' -f1 "$DIR/parent.ready")" -D "$DIR/img" -W "$DIR/img" -o dump.log -v4 --file-locks
# PID 1 of some VMs reaps the dumped tree late: its PIDs stay taken for a few seconds.
for _ in 1 2 3 4 5 6; do
  "$CRIU" restore --manage-cgroups=ignore -D "$DIR/img" -W "$DIR/img" -o restore.log -v4 -d --file-locks && break
  sleep 3
done
grep -E 'readers|returned$' "$DIR/img/restore.log" || true
[ "$(grep -c 'readers)' "$DIR/img/restore.log")" -ge 2 ] || { echo "FAIL: no parallel read in both processes"; exit 1; }
kill -USR1 $(cut -d' ' -f1 "$DIR"/*.ready)
until [ "$(find "$DIR" -maxdepth 1 -name '*.ok' -o -maxdepth 1 -name '*.bad' | wc -l)" = 2 ]; do sleep 0.2; done
sleep 0.2
cat "$DIR"/*.ok "$DIR"/*.bad 2>/dev/null || true
if ls "$DIR"/*.bad >/dev/null 2>&1; then echo "FAIL: TIDs or memory differ after restore"; exit 1; fi
echo "ok: both processes restored with their PIDs, TIDs and memory"
