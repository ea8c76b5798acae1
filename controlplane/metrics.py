"""The control plane's Prometheus metrics: definitions only, on a registry of
their own (so tests and several control planes in one process never collide),
and the HTTP server that exposes them at /metrics."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import threading

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.api_requests = Counter(
            "requests", "API requests by gRPC method and status code.",
            ["method", "code"], namespace="skiff", subsystem="apiserver", registry=r)
        self.api_latency = Histogram(
            "request_duration_seconds", "API request latency by gRPC method (unary calls).",
            ["method"], namespace="skiff", subsystem="apiserver", buckets=_LATENCY_BUCKETS, registry=r)
        self.watches = Counter(
            "watch_events", "Watch events sent, by kind and type.",
            ["kind", "type"], namespace="skiff", subsystem="apiserver", registry=r)
        self.watch_failures = Counter(
            "watch_failures", "Watches that ended in an error the client was sent (its informer lists "
            "again), by requested kind and status code; a rising count means watchers keep losing their streams.",
            ["kind", "code"], namespace="skiff", subsystem="apiserver", registry=r)
        self.schedule_attempts = Counter(
            "schedule_attempts", "Scheduling attempts by result (scheduled, unschedulable, error).",
            ["result"], namespace="skiff", subsystem="scheduler", registry=r)
        self.scheduling_latency = Histogram(
            "scheduling_attempt_duration_seconds", "Time of one scheduling attempt (filter, score, bind).",
            ["result"], namespace="skiff", subsystem="scheduler", buckets=_LATENCY_BUCKETS, registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """/metrics over HTTP on its own thread (prometheus-client renders synchronously)."""

    def __init__(self, *, metrics: Metrics, host: str, port: int) -> None:
        outer = metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0] not in ("/metrics", "/healthz"):
                    self.send_error(404, "only /metrics and /healthz are served here")
                    return
                body = outer.render() if self.path.startswith("/metrics") else b"ok\n"
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST if self.path.startswith("/metrics")
                                 else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # scrapes every few seconds: keep stderr quiet
                pass

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port} for /metrics: {exc.strerror or exc}") from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self._server.shutdown)
        self._server.server_close()
