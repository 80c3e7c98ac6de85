"""What tp2_rank.py and its GPU-less stand-in tp2_rank_dry.py share: results, waiting, sockets."""
import json
import os
import sys
import time

OUT = os.environ["BENCH_OUTPUT_DIR"]
SIGNAL = os.environ["DYN_CHECKPOINT_SIGNAL_FILE"]
MARKER = os.environ.get("DYN_RESTORE_MARKER_FILE", "/tmp/dynamo-restored")


def write_json(name, payload):
    path = os.path.join(OUT, name)
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(path + ".tmp", path)


def sockets():
    """This process's sockets by kind, from /proc: what a checkpoint of it has to carry."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    counts = {}
    for kind in ("tcp", "tcp6", "udp", "udp6", "unix"):
        try:
            with open(f"/proc/self/net/{kind}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        column = 6 if kind == "unix" else 9
        counts[kind] = sum(1 for line in lines if len(line.split()) > column and line.split()[column] in inodes)
    counts["total"] = len(inodes)
    return counts


def wait_restored_or_signal():
    """After the restore marker: the rendezvous the launcher sends on stdin, and when the marker was seen. Exits on the signal file."""
    while not os.path.exists(MARKER):
        if os.path.exists(SIGNAL):
            sys.exit(0)
        time.sleep(0.05)
    seen = time.time()
    return sys.stdin.readline().strip(), seen


def idle():
    """A restored rank serves on; the signal file of the checkpoint it came from no longer concerns it."""
    while True:
        time.sleep(1)
