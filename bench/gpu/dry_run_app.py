#!/usr/bin/env python3
"""A CPU-only stand-in for llm_server.py, for dry runs of the GPU benchmark's plumbing on a machine
without a GPU: same contract and output files, and it registers itself as a CUDA process with the
fake libcuda (test/support/fake-libcuda.c) through FAKE_LIBCUDA_DIR; HTTP as llm_server.py
(bench_http.py) when BENCH_HTTP_PORT is set."""
import hashlib
import json
import os
import time

import bench_http

bench_http.serve()

out = os.environ["BENCH_OUTPUT_DIR"]
# Inside a container the fake driver's directory is absent: its PIDs are the host's, not the container's.
if os.environ.get("FAKE_LIBCUDA_DIR"):
    with open(os.path.join(os.environ["FAKE_LIBCUDA_DIR"], str(os.getpid())), "w") as f:
        f.write("0\n")
weights = bytearray(hashlib.shake_256(b"weights").digest(64 << 20))
time.sleep(1.0)


def generation(phase):
    digest = hashlib.sha256(weights).hexdigest()
    return {"tokens": list(weights[:64]), "logits_sha256": digest, "weights_checksum": float(sum(weights[:4096])), "seconds": 0.1, "tokens_per_s": 640, "pid": os.getpid(), "phase": phase}


def write(name, payload):
    with open(os.path.join(out, name + ".tmp"), "w") as f:
        json.dump(payload, f)
    os.replace(os.path.join(out, name + ".tmp"), os.path.join(out, name))


before = generation("before-checkpoint")
write("generation-before.json", before)
bench_http.publish(before)
write("init.json", {"phases": {"init_s": 1.0}, "parameters": len(weights), "torch": "none (dry run)", "memory_after_empty_cache": {"allocated_bytes": 0, "reserved_bytes": 0}})
with open(os.environ["DYN_CHECKPOINT_READY_FILE"], "w") as f:
    f.write("ready")
print("ready", flush=True)
while not os.path.exists(os.environ["DYN_RESTORE_MARKER_FILE"]):
    if os.path.exists(os.environ["DYN_CHECKPOINT_SIGNAL_FILE"]):
        raise SystemExit(0)
    time.sleep(0.05)
after = generation("after-restore")
write("generation-after.json", after)
bench_http.publish(after)
print("restored and generated", flush=True)
while True:
    time.sleep(1)
