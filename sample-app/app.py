#!/usr/bin/env python3
"""Torpor's sample workload, written to ChReK's application contract (standalone usage guide).

Like a model server, it listens on HTTP from its first second (SAMPLE_HOST, 127.0.0.1 by default;
SAMPLE_PORT, a free port by default): GET /state answers its pid, instance, phase, counter and
checksum as JSON; GET /health answers 200 once it serves (running or restored), 503 before.
Initialization is slow and its result checkable: it builds a table of SAMPLE_TABLE_MB megabytes and
hashes it for about SAMPLE_INIT_SECONDS. Then it writes the ready file and waits: the signal file
means "checkpoint complete, exit"; the restore marker means "you were restored, continue".
Its counter holds the number of hashing passes of its initialization and counts on once the app
runs; it reports pid, port, counter and the table's checksum (recomputed from memory) in
SAMPLE_STATUS_FILE and on /state, so a restore can be checked: same checksum, the counter
continues from where it was at the checkpoint (a cold start would begin again from its passes).

Test switches (all optional): SAMPLE_EXIT_BEFORE_READY, SAMPLE_NEVER_READY, SAMPLE_EXIT_AFTER_READY,
SAMPLE_CONNECT_UNIX=<socket path> (holds a connection CRIU cannot dump without --ext-unix-sk).
"""
import hashlib
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TICK_SECONDS = 0.2
# How often the app looks for the signal file or the restore marker while it waits: the contract
# leaves it to the app, and every tick it sleeps is added to the checkpoint (its exit) and to the
# restore (its readiness). A stat every 20 ms costs nothing; inotify would have to survive CRIU.
WAIT_TICK_SECONDS = 0.02


def log(message):
    print(f"[sample-app pid={os.getpid()}] {message}", flush=True)


# Drawn once per process start: a restored process reports the same value, a cold start a new one.
INSTANCE = os.urandom(8).hex()
# What /state answers and the status file holds; the main thread updates it, the server thread reads it.
STATE = {"phase": "loading", "counter": 0, "checksum": None, "port": None}


class StateHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as HTTP clients of a model server use it

    def do_GET(self):
        if self.path == "/state":
            self.answer(200, {"pid": os.getpid(), "instance": INSTANCE, **STATE})
        elif self.path == "/health":
            serving = STATE["phase"] in ("running", "restored")
            self.answer(200 if serving else 503, {"phase": STATE["phase"]})
        else:
            self.answer(404, {"error": f"no {self.path}; try /state or /health"})

    def answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def serve_http():
    """Listens before initialization starts, as model servers do; answers from a thread of its own."""
    server = ThreadingHTTPServer((os.environ.get("SAMPLE_HOST", "127.0.0.1"), int(os.environ.get("SAMPLE_PORT", "0"))), StateHandler)
    server.daemon_threads = True
    STATE["port"] = server.server_address[1]
    log(f"listening on http://{server.server_address[0]}:{STATE['port']}")
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()


def write_status(**status):
    STATE.update(status)
    path = os.environ.get("SAMPLE_STATUS_FILE")
    if not path:
        return
    # Per process: a restored copy and a fresh start of the same app may share one status file.
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({"pid": os.getpid(), "instance": INSTANCE, "time": time.time(), **STATE}, f)
    os.replace(tmp, path)


def load_model():
    """The slow part a checkpoint saves: a deterministic table, hashed until the init time is spent."""
    size = int(float(os.environ.get("SAMPLE_TABLE_MB", "256")) * 1024 * 1024)
    init_seconds = float(os.environ.get("SAMPLE_INIT_SECONDS", "10"))
    started = time.time()
    table = bytearray(size)
    chunk = 1 << 20
    seed = b"torpor-sample"
    for offset in range(0, size, chunk):
        seed = hashlib.sha256(seed).digest()
        table[offset : offset + chunk] = hashlib.shake_256(seed).digest(min(chunk, size - offset))
    passes = 0
    while passes == 0 or time.time() - started < init_seconds:
        checksum = hashlib.sha256(table).hexdigest()
        passes += 1
    return table, checksum, passes, time.time() - started


def run_application(table, counter, restored):
    checksum = hashlib.sha256(table).hexdigest()
    log(f"running (restored={restored}) checksum={checksum} counter={counter}")
    while True:
        counter += 1
        write_status(phase="restored" if restored else "running", counter=counter, checksum=checksum)
        time.sleep(TICK_SECONDS)


def main():
    signal_file = os.environ.get("DYN_CHECKPOINT_SIGNAL_FILE")
    ready_file = os.environ.get("DYN_CHECKPOINT_READY_FILE")
    restore_marker = os.environ.get("DYN_RESTORE_MARKER_FILE", "/tmp/dynamo-restored")
    is_checkpoint_mode = signal_file is not None

    if os.environ.get("SAMPLE_EXIT_BEFORE_READY"):
        log("exiting before ready, as asked")
        sys.exit(3)
    serve_http()
    write_status(phase="loading")
    held = None
    if os.environ.get("SAMPLE_CONNECT_UNIX"):
        held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        held.connect(os.environ["SAMPLE_CONNECT_UNIX"])

    table, checksum, counter, init_seconds = load_model()
    log(f"initialized {len(table) >> 20} MiB in {init_seconds:.1f}s ({counter} passes), checksum={checksum}")
    write_status(phase="initialized", counter=counter, checksum=checksum, init_seconds=init_seconds)

    if is_checkpoint_mode:
        log("Checkpoint mode detected")
        if os.environ.get("SAMPLE_NEVER_READY"):
            while True:
                time.sleep(1)
        # Report once, before the ready file: after it the app stays quiet until the signal or the
        # marker, so no file is open (or renamed away) at the moment CRIU dumps it.
        write_status(phase="waiting-for-checkpoint", counter=counter, checksum=checksum)
        if ready_file:
            with open(ready_file, "w") as f:
                f.write("ready")
            log(f"Wrote checkpoint ready file: {ready_file}")
        if os.environ.get("SAMPLE_EXIT_AFTER_READY"):
            log("exiting right after ready, as asked")
            sys.exit(4)
        log("CHECKPOINT_READY: Model loaded, ready for container checkpoint")
        log(f"CHECKPOINT_READY: Waiting for signal file: {signal_file}")
        log(f"CHECKPOINT_READY: Or restore marker file: {restore_marker}")
        while True:
            if os.path.exists(restore_marker):
                log(f"Detected restore from checkpoint (marker: {restore_marker})")
                break
            if os.path.exists(signal_file):
                log(f"Checkpoint signal file detected: {signal_file}")
                log("Checkpoint complete, exiting")
                return
            time.sleep(WAIT_TICK_SECONDS)
        run_application(table, counter, restored=True)
    else:
        run_application(table, counter, restored=False)
    del held


if __name__ == "__main__":
    main()
