"""The node agent's Prometheus metrics: definitions, prefix `skiff_agent_`.

One `AgentMetrics` per agent, on its own registry (so two agents in one test
process do not collide), served at --metrics-listen /metrics.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from skiff.controller import ControllerMetrics

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


class AgentMetrics:
    def __init__(self, *, node_name: str) -> None:
        self.node_name = node_name
        self.registry = CollectorRegistry()
        r = self.registry
        self.controller = ControllerMetrics(r)   # the pod informer's and the pod workers' queue
        self.pods = Gauge("skiff_agent_pods", "Pods on this node by phase", ["node", "phase"], registry=r)
        self.container_starts = Counter("skiff_agent_container_starts_total",
                                        "Container start attempts (first starts and restarts)",
                                        ["node"], registry=r)
        self.pod_start_latency = Histogram(
            "skiff_agent_pod_start_latency_seconds", "From pod creation to Running, as seen by the agent",
            ["node"], buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300), registry=r)
        self.runtime_operation_latency = Histogram(
            "skiff_agent_runtime_operation_duration_seconds", "Runtime calls by operation", ["operation"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.runtime_operation_errors = Counter("skiff_agent_runtime_operation_errors_total",
                                                "Runtime calls that raised, by operation", ["operation"], registry=r)
        labels = ["namespace", "pod", "container"]
        self.container_cpu = Gauge("skiff_agent_container_cpu_usage_seconds", "Container CPU time used",
                                   labels, registry=r)
        self.container_memory = Gauge("skiff_agent_container_memory_working_set_bytes",
                                      "Container memory working set", labels, registry=r)
        self.container_pids = Gauge("skiff_agent_container_pids", "Processes in the container", labels, registry=r)
        for phase in PHASES:
            self.pods.labels(node=node_name, phase=phase).set(0)

    def set_pod_phases(self, phases: list[str]) -> None:
        for phase in PHASES:
            self.pods.labels(node=self.node_name, phase=phase).set(sum(1 for p in phases if p == phase))

    @contextmanager
    def time_runtime(self, operation: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self.runtime_operation_errors.labels(operation=operation).inc()
            raise
        finally:
            self.runtime_operation_latency.labels(operation=operation).observe(time.monotonic() - start)

    def set_container_stats(self, stats: dict[tuple[str, str, str], tuple[float, int, int]]) -> None:
        """Replace the per-container gauges with `stats`: (ns, pod, container) -> (cpu s, bytes, pids)."""
        for gauge in (self.container_cpu, self.container_memory, self.container_pids):
            gauge.clear()
        for (ns, pod, container), (cpu, mem, pids) in stats.items():
            self.container_cpu.labels(ns, pod, container).set(cpu)
            self.container_memory.labels(ns, pod, container).set(mem)
            self.container_pids.labels(ns, pod, container).set(pids)

    def serve(self, *, host: str, port: int):
        """Serve /metrics in a background thread; returns the server (call .shutdown())."""
        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot serve /metrics on {host}:{port} (--metrics-listen): "
                                     f"{exc.strerror}") from None
        return server
