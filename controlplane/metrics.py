"""The control plane's Prometheus metrics: definitions only, on a registry of
their own (so tests and several control planes in one process never collide),
and the HTTP server that exposes them at /metrics (and, when given, the
Prometheus http_sd target lists at /sd/..., controlplane/discovery.py).

Names are Kubernetes' where Kubernetes has the series (architecture.md,
decision 19): `apiserver_request_total{verb,resource,subresource,code}` with
verbs and HTTP codes as kube-apiserver reports them (a gRPC method maps to
its REST verb, a status code to its HTTP code), `scheduler_*` as
kube-scheduler's, `etcd_request_duration_seconds{operation,type}`,
`leader_election_master_status{name}`. `skiff_*` is left for what has no
counterpart (a watch that ended in an error)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from skiff.metricshttp import MetricsHttpServer, Route

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


# gRPC method -> (Kubernetes verb, subresource). Apply is server-side apply (APPLY),
# UpdateStatus a PUT on the status subresource, Bind a POST on pods/binding.
VERBS = {
    "Apply": ("APPLY", ""), "Create": ("POST", ""), "Update": ("PUT", ""), "UpdateStatus": ("PUT", "status"),
    "Delete": ("DELETE", ""), "Get": ("GET", ""), "List": ("LIST", ""), "Watch": ("WATCH", ""),
    "Bind": ("POST", "binding"), "Logs": ("CONNECT", "log"), "Exec": ("CONNECT", "exec"),
    "Attach": ("CONNECT", "attach"), "PortForward": ("CONNECT", "portforward"),
    "Stats": ("GET", "proxy"),
}
# gRPC status code name -> the HTTP code kube-apiserver answers with.
HTTP_CODES = {
    "OK": "200", "CANCELLED": "499", "UNKNOWN": "500", "INVALID_ARGUMENT": "422", "DEADLINE_EXCEEDED": "504",
    "NOT_FOUND": "404", "ALREADY_EXISTS": "409", "PERMISSION_DENIED": "403", "RESOURCE_EXHAUSTED": "429",
    "FAILED_PRECONDITION": "400", "ABORTED": "409", "OUT_OF_RANGE": "410", "UNIMPLEMENTED": "501",
    "INTERNAL": "500", "UNAVAILABLE": "503", "DATA_LOSS": "500", "UNAUTHENTICATED": "401",
}


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.api_requests = Counter(
            "apiserver_request", "API requests by verb, resource, subresource and HTTP status code "
            "(kube-apiserver's series; a gRPC method counts as its REST verb).",
            ["verb", "resource", "subresource", "code"], registry=r)
        self.api_latency = Histogram(
            "apiserver_request_duration_seconds", "API request latency by verb and resource "
            "(WATCH and CONNECT are long-running and counted only in apiserver_request_total).",
            ["verb", "resource", "subresource"], buckets=_LATENCY_BUCKETS, registry=r)
        self.watches = Counter(
            "apiserver_watch_events", "Watch events sent, by kind and type.", ["kind", "type"], registry=r)
        self.watch_failures = Counter(
            "watch_failures", "Watches that ended in an error the client was sent (its informer lists "
            "again), by requested kind and status code; a rising count means watchers keep losing their streams.",
            ["kind", "code"], namespace="skiff", subsystem="apiserver", registry=r)
        self.schedule_attempts = Counter(
            "scheduler_schedule_attempts", "Scheduling attempts by result (scheduled, unschedulable, error).",
            ["result", "profile"], registry=r)
        self.scheduling_latency = Histogram(
            "scheduler_scheduling_attempt_duration_seconds",
            "Time of one scheduling attempt (filter, score, bind), by result.",
            ["result", "profile"], buckets=_LATENCY_BUCKETS, registry=r)
        self.etcd_latency = Histogram(
            "etcd_request_duration_seconds", "etcd request latency by operation and object type.",
            ["operation", "type"], buckets=_LATENCY_BUCKETS, registry=r)
        self.etcd_errors = Counter(
            "etcd_request_errors", "etcd requests that failed, by operation and object type.",
            ["operation", "type"], registry=r)
        self.leader = Gauge(
            "leader_election_master_status", "1 while this replica holds the leader lease, else 0.",
            ["name"], registry=r)
        self.leader.labels("skiff-controlplane").set(0)
        self.inflight_current = Gauge(
            "apiserver_current_inflight_requests", "Requests being served now, by kind (readOnly, mutating; "
            "long-running ones are not counted).", ["request_kind"], registry=r)
        self.inflight_dropped = Counter(
            "apiserver_dropped_requests", "Requests refused with 429 by the max-in-flight limit, by kind.",
            ["request_kind"], registry=r)
        self.watch_cache = WatchCacheCollector()
        r.register(self.watch_cache)

    def count_request(self, method: str, resource: str, code: str, seconds: float | None) -> None:
        """One API call: `method` the gRPC method, `code` the gRPC status code's name."""
        verb, subresource = VERBS.get(method, (method.upper(), ""))
        http = "201" if code == "OK" and verb == "POST" else HTTP_CODES.get(code, "500")   # 201 Created
        self.api_requests.labels(verb, resource, subresource, http).inc()
        if seconds is not None:
            self.api_latency.labels(verb, resource, subresource).observe(seconds)

    def observe_etcd(self, operation: str, resource: str, seconds: float, *, failed: bool) -> None:
        self.etcd_latency.labels(operation, resource).observe(seconds)
        if failed:
            self.etcd_errors.labels(operation, resource).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class WatchCacheCollector:
    """The watch cache's series, read from its caches at each scrape (kube-apiserver's
    names, by `resource`): events received from etcd and dispatched to watchers,
    initializations (a list of the kind from etcd), watchers closed for falling
    behind, lists served with the objects they looked at and returned; gauges for
    each kind's revision, ring capacity and registered watchers."""

    _COUNTERS = (
        ("apiserver_watch_cache_events_received", "Events the watch cache received from etcd.", "received"),
        ("apiserver_watch_cache_events_dispatched", "Events the watch cache dispatched to watchers.", "dispatched"),
        ("apiserver_watch_cache_initializations", "Watch cache (re)initializations: lists of the kind from etcd.",
         "initializations"),
        ("apiserver_terminated_watchers", "Watchers closed because they did not read their events.",
         "terminated_watchers"),
        ("apiserver_cache_list", "Lists served from the watch cache.", "lists"),
        ("apiserver_cache_list_fetched_objects", "Objects the watch cache's lists looked at.", "fetched_objects"),
        ("apiserver_cache_list_returned_objects", "Objects the watch cache's lists returned.", "returned_objects"),
    )

    def __init__(self) -> None:
        self.cachers: list = []   # controlplane.store.cacher.Cacher; attached by the API server

    def describe(self) -> list:
        return []   # collected at scrape time only

    def collect(self):
        counters = [(CounterMetricFamily(name, text, labels=["resource"]), attr) for name, text, attr in self._COUNTERS]
        revision = GaugeMetricFamily("apiserver_watch_cache_resource_version",
                                     "The revision the watch cache of the kind has applied.", labels=["resource"])
        capacity = GaugeMetricFamily("apiserver_watch_cache_capacity",
                                     "Events the watch cache of the kind keeps.", labels=["resource"])
        watchers = GaugeMetricFamily("apiserver_registered_watchers",
                                     "Watchers the watch cache of the kind serves now.", labels=["resource"])
        for cacher in self.cachers:
            for resource, cache in sorted(cacher.caches().items()):
                for family, attr in counters:
                    family.add_metric([resource], getattr(cache.stats, attr))
                revision.add_metric([resource], cache.revision)
                capacity.add_metric([resource], cache.capacity)
                watchers.add_metric([resource], len(cache.watchers))
        yield from (family for family, _ in counters)
        yield from (revision, capacity, watchers)


class MetricsServer(MetricsHttpServer):
    """/metrics and /healthz, and any further `routes` (kube-state metrics,
    http_sd lists: controlplane/main.py adds them), on skiff.metricshttp."""

    def __init__(self, *, metrics: Metrics, host: str, port: int, routes: dict[str, Route] | None = None) -> None:
        super().__init__(host=host, port=port, routes={
            "/metrics": lambda: (CONTENT_TYPE_LATEST, metrics.render()),
            "/healthz": lambda: ("text/plain", b"ok\n"), **(routes or {})})

    async def stop(self) -> None:
        await asyncio.to_thread(self.shutdown)
