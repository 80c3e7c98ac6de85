#!/usr/bin/env python3
"""A GPU-less stand-in for tp2_rank.py, for dry runs of the TP=2 flow: the same files and modes,
no torch. It registers itself with the fake libcuda (FAKE_LIBCUDA_DIR/<pid>, and <pid>.gpu for
bench/gpu/fake-nvidia-smi.sh) and its "communicator" has NCCL's socket shape: a listener on an
ephemeral port whose address goes through the rendezvous file, an outgoing connection to the peer's
listener and the accepted one from the peer. The all-reduce sends each rank's values over them.
Cooperative mode closes them all before ready; transparent mode keeps them across the checkpoint."""
import hashlib
import os
import socket
import sys
import time

import tp2_common as common

RANK = int(sys.argv[1])
WORLD = int(os.environ["TP2_WORLD"])
MODE = os.environ.get("BENCH_TP2_MODE", "cooperative")


class Comm:
    def __init__(self, store_path):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        port_file = f"{store_path}.{RANK}"
        with open(port_file + ".tmp", "w") as f:
            f.write(str(self.listener.getsockname()[1]))
        os.replace(port_file + ".tmp", port_file)
        peer_file = f"{store_path}.{1 - RANK}"
        while not os.path.exists(peer_file):
            time.sleep(0.02)
        with open(peer_file) as f:
            self.out = socket.create_connection(("127.0.0.1", int(f.read())))
        self.accepted, _ = self.listener.accept()

    def all_reduce(self, value):
        self.out.sendall(f"{value!r}\n".encode())
        line = b""
        while not line.endswith(b"\n"):
            chunk = self.accepted.recv(1)
            if not chunk:
                raise ConnectionError("the peer closed its connection")
            line += chunk
        return value + float(line)

    def destroy(self):
        for s in (self.out, self.accepted, self.listener):
            s.close()


def register_with_fake_driver():
    fake = os.environ.get("FAKE_LIBCUDA_DIR")
    if fake:
        with open(os.path.join(fake, f"{os.getpid()}.gpu"), "w") as f:
            f.write(f"{RANK}\n")
        with open(os.path.join(fake, str(os.getpid())), "w") as f:
            f.write("0\n")


def checks(comm, checksum):
    value = comm.all_reduce(float(RANK + 1))
    return {"all_reduce_all_3": value == 3.0, "all_reduce_value": value, "checksums_sum": comm.all_reduce(checksum)}


def main():
    register_with_fake_driver()
    shard = hashlib.shake_256(f"rank {RANK}".encode()).digest(16 << 20)
    checksum = float(sum(shard[:65536]))
    t = time.time()
    comm = Comm(os.environ["TP2_STORE"])
    before = checks(comm, checksum)
    init_s = time.time() - t
    if MODE == "cooperative":
        comm.destroy()
    common.write_json(f"rank{RANK}-before.json", {"rank": RANK, "pid": os.getpid(), "mode": MODE, "torch": "none (dry run)", "checksum": checksum,
                                                  "init_and_all_reduce_s": init_s, **before, "gpu": {"device": RANK},
                                                  "sockets_at_ready": common.sockets(), "ok": before["all_reduce_all_3"]})
    store_path, seen = common.wait_restored_or_signal()
    report = {"rank": RANK, "pid": os.getpid(), "mode": MODE, "checksum_before": checksum, "rendezvous": store_path}
    try:
        report["checksum"] = float(sum(shard[:65536]))
        t = time.time()
        if MODE == "cooperative":
            comm = Comm(store_path)
        report.update(checks(comm, checksum))
        report.update(reinit_and_all_reduce_s=time.time() - t, marker_to_all_reduce_s=time.time() - seen, gpu={"device": RANK})
        report["ok"] = report["all_reduce_all_3"] and report["checksum"] == checksum
    except Exception as err:  # noqa: BLE001 - the failure is the result to report
        report.update(ok=False, error=f"{type(err).__name__}: {err}")
    common.write_json(f"rank{RANK}-after.json", report)
    common.idle()


main()
