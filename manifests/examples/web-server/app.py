"""A small web server for Skiff's example: `skiff build -t my-web-server .`,
then `skiff apply -f pod.yaml`, then `curl http://127.0.0.1:5000/`.

Standard library only, so it runs on the debian-python base image.
"""
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "5000"))
VERSION = os.environ.get("VERSION", "")        # baked in by the Dockerfile's ARG VERSION
NODE_NAME = os.environ.get("NODE_NAME", "")    # the Deployment sets it from spec.nodeName


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (f"Hello from Skiff! I am {socket.gethostname()}"
                + (f", version {VERSION}" if VERSION else "")
                + (f", on node {NODE_NAME}" if NODE_NAME else "") + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args) -> None:
        # One line per request on stdout, so `skiff logs` shows the traffic.
        print(f"{self.client_address[0]} {fmt % args}", flush=True)


if __name__ == "__main__":
    # PID 1 of its container: the kernel gives PID 1 no default action for SIGTERM, so
    # without a handler a stop waits out the grace period (30 s) for the SIGKILL.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    print(f"listening on 0.0.0.0:{PORT}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Hello).serve_forever()
