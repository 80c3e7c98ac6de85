#!/usr/bin/env python3
"""The socket shape of a TP=2 NCCL job without GPUs or torch, for CRIU experiments on any machine:
a launcher holding a rendezvous store (a listener, like torch's TCPStore) and 2 rank processes.
Each rank connects to the store, opens its own listener on an ephemeral port (NCCL's bootstrap
and proxy listeners), and the ranks connect to each other's listener (rank 0 -> rank 1 and
rank 1 -> rank 0), so every rank holds a listener on port P *and* the accepted connection on
the same local port P. The launcher writes READY_FILE when both ranks are connected, then the
tree waits; after a restore each rank sends a ping over every connection and checks the echo.
SOCKET_SHAPE_REUSEADDR=1 sets SO_REUSEADDR on every socket.
Usage: socket_shape.py READY_FILE RESULT_FILE (RESULT_FILE written by the launcher after a restore
once a RESTORED_MARKER file appears beside READY_FILE)."""
import os
import socket
import sys
import time

READY, RESULT = sys.argv[1], sys.argv[2]
MARKER = READY + ".restored"


def sock():
    s = socket.socket()
    # SOCKET_SHAPE_REUSEADDR=1: every socket with SO_REUSEADDR, which its TIME_WAIT remnants inherit.
    if os.environ.get("SOCKET_SHAPE_REUSEADDR") == "1":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


def connect(port):
    s = sock()
    s.connect(("127.0.0.1", port))
    return s


def listener():
    s = sock()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


def rank(r, store_port, report_w):
    store = connect(store_port)
    mine = listener()
    port = mine.getsockname()[1]
    store.sendall(f"{r} {port}\n".encode())
    peer_port = int(store.makefile().readline())
    out = connect(peer_port)
    accepted, _ = mine.accept()
    os.write(report_w, f"rank {r}: listener {port}, accepted local port {accepted.getsockname()[1]}, outgoing to {peer_port}\n".encode())
    os.write(report_w, b"ready\n")
    while not os.path.exists(MARKER):
        time.sleep(0.05)
    # Echo protocol: each rank writes on its outgoing socket and echoes what arrives on the accepted one.
    out.sendall(f"ping{r}".encode())
    echoed = accepted.recv(5)
    accepted.sendall(echoed)
    back = out.recv(5)
    os.write(report_w, f"rank {r}: echo {'ok' if back == f'ping{r}'.encode() else back!r}\n".encode())
    time.sleep(3600)


def main():
    store = listener()
    store_port = store.getsockname()[1]
    report_r, report_w = os.pipe()
    for r in (0, 1):
        if os.fork() == 0:
            store.close()
            rank(r, store_port, report_w)
            os._exit(0)
    conns = [store.accept()[0] for _ in range(2)]
    ports = {}
    for c in conns:
        r, p = c.makefile().readline().split()
        ports[int(r)] = (c, int(p))
    for r, (c, _) in ports.items():
        c.sendall(f"{ports[1 - r][1]}\n".encode())
    log = b""
    while log.count(b"ready") < 2:
        log += os.read(report_r, 4096)
    with open(READY, "w") as f:
        f.write(f"launcher: store listener {store_port}\n" + log.decode())
    while not os.path.exists(MARKER):
        time.sleep(0.05)
    while log.count(b"echo") < 2:
        log += os.read(report_r, 4096)
    with open(RESULT, "w") as f:
        f.write(log.decode())
    time.sleep(3600)


main()
