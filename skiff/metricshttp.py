"""A small HTTP server for Prometheus scrapes, shared by the control plane and
the agent: a table of paths, each a function returning (content type, body),
served on a thread of its own (prometheus_client renders synchronously).

A route runs on the HTTP thread: it reads snapshots only, never a lock the
API path takes and never etcd. A route that raises answers 500; the server
lives on.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

Route = Callable[[], "tuple[str, bytes] | tuple[str, bytes, int]"]   # (type, body[, HTTP status])


class MetricsHttpServer:
    def __init__(self, *, host: str, port: int, routes: dict[str, Route], flag: str = "--metrics-listen") -> None:
        self.routes = table = dict(routes)   # add routes any time: the handler reads this dict

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                route = table.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404, f"served here: {', '.join(sorted(table))}")
                    return
                try:
                    content_type, body, *status = route()
                except Exception as exc:  # noqa: BLE001 - a scrape answers 500, the server lives on
                    self.send_error(500, f"{type(exc).__name__}: {exc}")
                    return
                self.send_response(status[0] if status else 200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # scrapes every few seconds: keep stderr quiet
                pass

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot serve /metrics on {host}:{port} ({flag}): "
                                     f"{exc.strerror or exc}") from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        """Stop serving (blocks until the serving thread has left its loop)."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def server_close(self) -> None:   # http.server's name, for callers written against it
        self._server.server_close()
