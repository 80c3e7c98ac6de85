#!/usr/bin/env python3
"""One rank of tp2_launcher.py's TP=2 job: holds BENCH_TP2_GIB GiB of seeded data on GPU <rank>,
joins an NCCL process group and verifies an all-reduce (every element 1 + 2 = 3, and the sum of
both ranks' data checksums). Cooperative mode (default), the contract's multi-process extension:
the group is destroyed before the rank reports ready, so the checkpoint holds no NCCL
communicator, no socket and no IPC handle; after the restore marker the rank joins a new group
through the FileStore path the launcher sends on stdin. Transparent mode keeps the group (a
TCPStore on rank 0, as torchrun's default) across the checkpoint and only runs the all-reduce
again. Writes rank<r>-before.json and rank<r>-after.json into BENCH_OUTPUT_DIR."""
import datetime
import os
import sys
import time

import tp2_common as common

RANK = int(sys.argv[1])
WORLD = int(os.environ["TP2_WORLD"])
MODE = os.environ.get("BENCH_TP2_MODE", "cooperative")
TIMEOUT = datetime.timedelta(seconds=int(os.environ.get("BENCH_TP2_NCCL_TIMEOUT_S", "120")))

t_import = time.time()
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import_s = time.time() - t_import
DEV = torch.device("cuda", RANK)
torch.cuda.set_device(DEV)


def make_shard():
    numel = int(float(os.environ.get("BENCH_TP2_GIB", "4")) * (1 << 30)) // 4
    shard = torch.empty(numel, dtype=torch.float32, device=DEV)
    shard.normal_(generator=torch.Generator(device=DEV).manual_seed(1234 + RANK))
    return shard


def checksum(shard):
    return float(shard.sum(dtype=torch.float64).item())


def join_group(store_path):
    if MODE == "cooperative":
        store = dist.FileStore(store_path, WORLD)
    else:
        store = dist.TCPStore("127.0.0.1", int(os.environ["TP2_PORT"]), WORLD, RANK == 0, timeout=TIMEOUT)
    dist.init_process_group("nccl", store=store, rank=RANK, world_size=WORLD, device_id=DEV, timeout=TIMEOUT)


def all_reduce_check(shard_checksum):
    x = torch.full((16 << 20,), float(RANK + 1), device=DEV)
    dist.all_reduce(x)
    sums = torch.tensor([shard_checksum], dtype=torch.float64, device=DEV)
    dist.all_reduce(sums)
    torch.cuda.synchronize()
    return {"all_reduce_all_3": bool((x == 3.0).all().item()), "all_reduce_value": float(x[0].item()), "checksums_sum": float(sums.item())}


def nccl_version():
    v = torch.cuda.nccl.version()
    return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


def gpu():
    props = torch.cuda.get_device_properties(DEV)
    return {"device": RANK, "uuid": str(getattr(props, "uuid", "")), "name": props.name, "reserved_bytes": torch.cuda.memory_reserved(DEV)}


def before():
    shard = make_shard()
    sum0 = checksum(shard)
    t = time.time()
    join_group(os.environ["TP2_STORE"])
    check = all_reduce_check(sum0)
    init_s = time.time() - t
    destroy_s = None
    if MODE == "cooperative":
        t = time.time()
        dist.destroy_process_group()
        destroy_s = time.time() - t
    torch.cuda.synchronize()
    torch.cuda.empty_cache()  # every reserved byte would be copied into the checkpoint image
    report = {"rank": RANK, "pid": os.getpid(), "mode": MODE, "torch": torch.__version__, "nccl": nccl_version(),
              "import_s": import_s, "checksum": sum0, "init_and_all_reduce_s": init_s, "destroy_s": destroy_s, **check, "gpu": gpu(),
              "sockets_at_ready": common.sockets(), "ok": check["all_reduce_all_3"]}
    common.write_json(f"rank{RANK}-before.json", report)
    return shard, sum0


def after(shard, sum0, store_path, marker_seen):
    report = {"rank": RANK, "pid": os.getpid(), "mode": MODE, "checksum_before": sum0, "rendezvous": store_path}
    try:
        report["checksum"] = checksum(shard)
        t = time.time()
        if MODE == "cooperative":
            join_group(store_path)
        report.update(all_reduce_check(sum0))
        report["reinit_and_all_reduce_s"] = time.time() - t
        report["marker_to_all_reduce_s"] = time.time() - marker_seen
        report["gpu"] = gpu()
        report["ok"] = report["all_reduce_all_3"] and report["checksum"] == sum0
    except Exception as err:  # noqa: BLE001 - the failure is the result to report
        report.update(ok=False, error=f"{type(err).__name__}: {err}")
    common.write_json(f"rank{RANK}-after.json", report)


def main():
    shard, sum0 = before()
    store_path, marker_seen = common.wait_restored_or_signal()
    after(shard, sum0, store_path, marker_seen)
    common.idle()


main()
