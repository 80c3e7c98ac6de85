#!/usr/bin/env python3
"""A tensor-parallel (TP=2) job under the application contract with its multi-process extension
(README: "Multi-process applications"): this launcher starts one rank process per GPU
(tp2_rank.py, or the GPU-less stand-in tp2_rank_dry.py named by BENCH_TP2_RANK), writes the ready
file once both ranks are initialised, verified and, in the cooperative mode, have destroyed their
NCCL communicators; after the restore marker it hands each rank a fresh rendezvous (a FileStore
path nothing used before, so a checkpoint restored twice never meets an old store) and writes
tp2-after.json once both ranks have re-joined and verified an all-reduce. On the signal file the
ranks exit and so does the launcher. The launcher itself never touches CUDA.
Environment: DYN_CHECKPOINT_READY_FILE, DYN_CHECKPOINT_SIGNAL_FILE, DYN_RESTORE_MARKER_FILE (the
contract); BENCH_OUTPUT_DIR (JSON results); BENCH_TP2_MODE cooperative (default) | transparent
(communicators kept across the checkpoint); BENCH_TP2_AFTER_TIMEOUT_S (default 240)."""
import json
import os
import socket
import subprocess
import sys
import time

from tp2_common import MARKER, OUT, SIGNAL, write_json

READY = os.environ["DYN_CHECKPOINT_READY_FILE"]
WORLD = 2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_store_path(tag):
    path = os.path.join(OUT, f"tp2-store-{os.getpid()}-{time.time_ns()}-{tag}")
    if os.path.exists(path):
        os.unlink(path)
    return path


def wait_for_ranks(ranks, suffix, timeout_s):
    """Each rank's rank<r>-<suffix>.json, or why it did not come (the rank died, or the timeout)."""
    deadline = time.monotonic() + timeout_s
    results = {}
    while len(results) < WORLD:
        for r, proc in enumerate(ranks):
            path = os.path.join(OUT, f"rank{r}-{suffix}.json")
            if r not in results and os.path.exists(path):
                with open(path) as f:
                    results[r] = json.load(f)
            elif r not in results and proc.poll() is not None:
                results[r] = {"rank": r, "ok": False, "error": f"rank {r} exited with status {proc.returncode}"}
        if time.monotonic() > deadline:
            for r in range(WORLD):
                results.setdefault(r, {"rank": r, "ok": False, "error": f"rank {r} did not report within {timeout_s} s"})
        time.sleep(0.05)
    return [results[r] for r in range(WORLD)]


def remove_rank_reports(suffixes):
    for r in range(WORLD):
        for suffix in suffixes:
            path = os.path.join(OUT, f"rank{r}-{suffix}.json")
            if os.path.exists(path):
                os.unlink(path)


def main():
    started = time.time()
    remove_rank_reports(("before", "after"))
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.environ.get("BENCH_TP2_RANK", "tp2_rank.py"))
    env = dict(os.environ, TP2_WORLD=str(WORLD), TP2_STORE=fresh_store_path("start"), TP2_PORT=str(free_port()))
    # Each rank's stdin is a pipe from the launcher: after a restore it carries the new rendezvous.
    ranks = [subprocess.Popen([sys.executable, script, str(r)], stdin=subprocess.PIPE, env=env) for r in range(WORLD)]
    before = wait_for_ranks(ranks, "before", 1200)
    write_json("tp2-before.json", {"launcher_pid": os.getpid(), "start_to_ready_s": time.time() - started, "ranks": before})
    if not all(r.get("ok") for r in before):
        print("a rank failed before the checkpoint:", before, flush=True)
        sys.exit(1)
    with open(READY, "w") as f:
        f.write("ready")
    print("ready", flush=True)
    while not os.path.exists(MARKER):
        if os.path.exists(SIGNAL):
            for proc in ranks:
                proc.wait()
            sys.exit(0)
        time.sleep(0.05)
    seen = time.time()
    # An earlier restore of the same checkpoint left its reports; the ranks write theirs only after the rendezvous below.
    remove_rank_reports(("after",))
    store = fresh_store_path("restored")
    for proc in ranks:
        proc.stdin.write(f"{store}\n".encode())
        proc.stdin.flush()
    after = wait_for_ranks(ranks, "after", int(os.environ.get("BENCH_TP2_AFTER_TIMEOUT_S", "240")))
    write_json("tp2-after.json", {"launcher_pid": os.getpid(), "marker_to_after_s": time.time() - seen, "ranks": after})
    print("restored:", "ok" if all(r.get("ok") for r in after) else after, flush=True)
    while True:
        time.sleep(1)


main()
