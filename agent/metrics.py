"""The node agent's Prometheus metrics: definitions.

One `AgentMetrics` per agent, on its own registry (so two agents in one test
process do not collide), served at --metrics-listen, at kubelet's paths:
/metrics (the agent's own series, under kubelet's names where kubelet has
them: `kubelet_started_containers_total`, `kubelet_pod_start_duration_seconds`,
`kubelet_runtime_operations_duration_seconds{operation_type}`; `skiff_agent_*`
for what kubelet has no series for) and /metrics/cadvisor (containers and
the node under cAdvisor's and node_exporter's names: agent/cadvisor.py).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from agent.cadvisor import Cadvisor
from skiff.controller import ControllerMetrics
from skiff.metricshttp import MetricsHttpServer

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


class AgentMetrics:
    def __init__(self, *, node_name: str, cgroup_parent: str = "skiff") -> None:
        """`cgroup_parent`: where the pods' cgroups are (agent/cgroupdelegation.py may have put it
        under the unit's own), which cAdvisor's `id` label names."""
        self.node_name = node_name
        self.registry = CollectorRegistry()
        r = self.registry
        self.controller = ControllerMetrics(r)   # the pod informer's and the pod workers' queue
        self.pods = Gauge("skiff_agent_pods", "Pods on this node by phase", ["node", "phase"], registry=r)
        self.container_starts = Counter("kubelet_started_containers_total",
                                        "Container start attempts (first starts and restarts)",
                                        ["node"], registry=r)
        self.pod_start_latency = Histogram(
            "kubelet_pod_start_duration_seconds", "From pod creation to Running, as seen by the agent",
            ["node"], buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300), registry=r)
        self.runtime_operation_latency = Histogram(
            "kubelet_runtime_operations_duration_seconds", "Runtime calls by operation", ["operation_type"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.runtime_operation_errors = Counter("kubelet_runtime_operations_errors_total",
                                                "Runtime calls that raised, by operation", ["operation_type"],
                                                registry=r)
        self.cadvisor = Cadvisor(node_name=node_name, cgroup_parent=cgroup_parent)
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
            self.runtime_operation_errors.labels(operation_type=operation).inc()
            raise
        finally:
            self.runtime_operation_latency.labels(operation_type=operation).observe(time.monotonic() - start)

    def serve(self, *, host: str, port: int) -> MetricsHttpServer:
        """Serve /metrics and /metrics/cadvisor in a background thread; returns
        the server (call .shutdown())."""
        server = MetricsHttpServer(host=host, port=port, routes={
            "/metrics": lambda: (CONTENT_TYPE_LATEST, generate_latest(self.registry)),
            "/metrics/cadvisor": self.cadvisor.render,
            "/healthz": lambda: ("text/plain", b"ok\n")})
        server.start()
        return server
