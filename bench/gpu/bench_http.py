"""The benchmark apps' HTTP endpoint, as a model server has one (stdlib only): GET /health answers
200 once the app is initialized (503 before), GET /generation the last generation it wrote (the one
before the checkpoint, or, once restored, the one after). It listens on 127.0.0.1:BENCH_HTTP_PORT
from the app's first second, in a daemon thread, so a checkpoint holds a listening socket as a
real server's does; without BENCH_HTTP_PORT it does nothing."""
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

state = {"initialized": False, "generation": None}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/health":
            status, body = (200, b"ok") if state["initialized"] else (503, b"initializing")
        elif self.path == "/generation" and state["generation"] is not None:
            status, body = 200, json.dumps(state["generation"]).encode()
        else:
            status, body = 404, b"not found"
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if self.path == "/generation" else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # the app's log carries its own phases only
        pass


def serve():
    port = os.environ.get("BENCH_HTTP_PORT")
    if not port:
        return
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()


def publish(generation):
    """The app is initialized and this is its latest generation."""
    state["generation"] = generation
    state["initialized"] = True
