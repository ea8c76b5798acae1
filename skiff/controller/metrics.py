"""The controller kit's Prometheus metrics: definitions only.

The work-queue series keep Kubernetes' names (`workqueue_depth`,
`workqueue_adds_total`, ... labelled by queue `name`) so dashboards written for
client-go read them unchanged; the informer series are Skiff's own and make a
watch that fell behind visible (issue 15: a silent watch must not go unnoticed).

No global registry: a process passes its own (the control plane's /metrics
registry, the agent's); an object given none gets a private one.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# client-go's buckets: 1 µs .. 10 s, ×10.
_DURATION_BUCKETS = tuple(10.0 ** e for e in range(-6, 2))


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.depth = Gauge("workqueue_depth", "Current depth of the work queue.", ["name"], registry=r)
        self.adds = Counter("workqueue_adds", "Keys added to the work queue.", ["name"], registry=r)
        self.retries = Counter("workqueue_retries", "Rate-limited re-adds (failed reconciles).", ["name"],
                               registry=r)
        self.queue_duration = Histogram(
            "workqueue_queue_duration_seconds", "How long a key waits in the queue before a worker takes it.",
            ["name"], buckets=_DURATION_BUCKETS, registry=r)
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds", "How long processing one key takes.",
            ["name"], buckets=_DURATION_BUCKETS, registry=r)
        self.relists = Counter(
            "skiff_informer_relists", "Informer lists, by kind and why (initial, gone, error, silent).",
            ["kind", "reason"], registry=r)
        self.stalls = Counter(
            "skiff_informer_stalls",
            "Re-lists after a silent watch that found changes the watch never delivered.", ["kind"], registry=r)
        self.watch_events = Counter("skiff_informer_watch_events", "Watch events received, by kind.",
                                    ["kind"], registry=r)
        self.last_event = Gauge(
            "skiff_informer_last_event_timestamp_seconds",
            "When the informer last heard from its watch (an event or a list), unix time.", ["kind"],
            registry=r)
