"""The scheduler: a controller (skiff.controller) that binds each pending pod to the best node that fits.

    informers (pods, nodes) ──► WorkQueue of pod keys ──► reconcile(key) = schedule_one
                                     ▲                     │ filter → score → Bind (CAS)
                                     │                     │ none fits: PodScheduled=False, Unschedulable
        node changes, pods finishing ┘◄── parked pods ◄────┘

It reaches the API over loopback like any client and shares the process's
Pod and Node informers. Between a Bind and the informer seeing it, the pod is
"assumed" on its node, so two pods scheduled back to back never both take the
same free memory. A pod that fits nowhere is parked, and retried when a node or
a bound pod changes (and every `retry_seconds` as a safety net); errors are
retried with the queue's per-key back-off.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from google.protobuf.message import Message

from controlplane.events import EventRecorder
from controlplane.metrics import Metrics
from controlplane.scheduler import plugins
from controlplane.scheduler.framework import REGISTRY, NodeInfo, unschedulable_message
from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.client import ApiClient, ApiError, Conflict, NotFound
from skiff.controller import Controller, EventHandler, Key, SharedInformerFactory
from skiff.retry import Backoff

log = logging.getLogger(__name__)
SCHEDULER_NAME = "default-scheduler"
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Decision:
    node_name: str | None
    message: str = ""


def schedule(pod: types_pb2.Pod, nodes: list[NodeInfo], *, filters: tuple[str, ...] = plugins.DEFAULT_FILTERS,
             scores: tuple[str, ...] = plugins.DEFAULT_SCORES) -> Decision:
    """Pure: the node for `pod`, or None and the reason as Kubernetes words it."""
    filter_plugins = [REGISTRY[name]() for name in filters]
    score_plugins = [REGISTRY[name]() for name in scores]
    feasible: list[NodeInfo] = []
    reasons: dict[str, tuple[str, ...]] = {}
    for info in nodes:
        for plugin in filter_plugins:
            status = plugin.filter(pod, info)
            if not status.ok:
                reasons[info.name] = status.reasons
                break
        else:
            feasible.append(info)
    if not feasible:
        return Decision(None, unschedulable_message(len(nodes), reasons))
    # Highest total score; ties broken by name so the choice is reproducible.
    best = max(feasible, key=lambda info: (sum(p.score(pod, info) for p in score_plugins), _neg(info.name)))
    return Decision(best.name)


def _neg(name: str) -> tuple[int, ...]:
    return tuple(-ord(ch) for ch in name)


def wants_scheduling(pod: types_pb2.Pod | None) -> bool:
    return (pod is not None and not pod.spec.node_name and not pod.metadata.HasField("deletion_timestamp")
            and pod.spec.scheduler_name in ("", SCHEDULER_NAME)
            and pod.status.phase not in TERMINAL_PHASES)


class Scheduler(Controller):
    name = "scheduler"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory, metrics: Metrics,
                 retry_seconds: float = 30.0, backoff: Backoff = Backoff(initial=0.2, maximum=10.0)) -> None:
        events = EventRecorder(client=client, component=SCHEDULER_NAME)
        super().__init__(backoff=backoff, recorder=events, metrics=factory.metrics)
        self.client = client
        self.metrics = metrics
        self.retry_seconds = retry_seconds
        self.events = events
        self.pods = self.uses(factory.informer("Pod"))
        self.nodes = self.uses(factory.informer("Node"))
        self._parked: set[Key] = set()
        self._assumed: dict[Key, str] = {}  # pod -> node, until the informer shows the binding
        self.pods.add_handler(self._on_pod)
        self.nodes.add_event_handler(EventHandler(on_add=self._on_node, on_update=self._on_node,
                                                  on_delete=self._on_node))

    # ------------------------------------------------------------ queue

    def enqueue(self, key: Key) -> None:
        self._parked.discard(key)
        super().enqueue(key)

    def _flush_parked(self) -> None:
        for key in list(self._parked):
            self.enqueue(key)

    def _on_pod(self, key: Key) -> None:
        pod = self.pods.get(key)
        if pod is None or pod.spec.node_name:
            self._assumed.pop(key, None)
            self._flush_parked()  # capacity may have been freed or taken
        if wants_scheduling(pod):
            self.enqueue(key)

    def _on_node(self, key: Key, *objs: Message) -> None:
        self._flush_parked()

    # ------------------------------------------------------------ loop

    async def started(self) -> list[asyncio.Task]:
        return [asyncio.create_task(self._periodic_retry(), name="scheduler-retry-parked")]

    async def _periodic_retry(self) -> None:
        while True:
            await asyncio.sleep(self.retry_seconds)
            self._flush_parked()

    async def reconcile(self, key: Key) -> None:
        await self.schedule_one(key)

    def node_infos(self) -> list[NodeInfo]:
        by_node: dict[str, list[types_pb2.Pod]] = {}
        for key in self.pods.keys():
            pod = self.pods.get(key)
            if pod is None or pod.status.phase in TERMINAL_PHASES:
                continue
            node = pod.spec.node_name or self._assumed.get(key)
            if node:
                by_node.setdefault(node, []).append(pod)
        return [NodeInfo.build(node, by_node.get(node.metadata.name, []))
                for node in sorted(self.nodes.list(), key=lambda n: n.metadata.name)]

    async def schedule_one(self, key: Key) -> None:
        pod = self.pods.get(key)
        if not wants_scheduling(pod) or key in self._assumed:
            return
        started = time.perf_counter()
        decision = schedule(pod, self.node_infos())
        if decision.node_name is None:
            result = "unschedulable"
            self._parked.add(key)
            await self._mark_unschedulable(pod, decision.message)
        else:
            result = "scheduled"
            self._assumed[key] = decision.node_name
            try:
                await self.client.bind(pod.metadata.name, decision.node_name, pod.metadata.namespace,
                                       resource_version=pod.metadata.resource_version)
                log.info("bound %s/%s to %s", *key, decision.node_name)
                await self.events.record(pod, type_="Normal", reason="Scheduled",
                                         message=f"Successfully assigned {meta.namespaced_name(pod)} "
                                                 f"to {decision.node_name}")
            except (Conflict, NotFound):
                # The pod changed or went away meanwhile: the informer brings the news.
                self._assumed.pop(key, None)
                result = "error"
            except ApiError:
                self._assumed.pop(key, None)
                self.metrics.schedule_attempts.labels("error", SCHEDULER_NAME).inc()
                raise
        self.metrics.schedule_attempts.labels(result, SCHEDULER_NAME).inc()
        self.metrics.scheduling_latency.labels(result, SCHEDULER_NAME).observe(time.perf_counter() - started)

    async def _mark_unschedulable(self, pod: types_pb2.Pod, message: str) -> None:
        updated = meta.copy(pod)
        if not meta.set_condition(updated.status.conditions, type_="PodScheduled", status="False",
                                  reason="Unschedulable", message=message):
            return
        log.info("%s: %s", meta.namespaced_name(pod), message)
        try:
            await self.client.update_status(updated)
        except (Conflict, NotFound):
            return  # a newer version is on its way through the informer; it is scheduled again then
        await self.events.record(pod, type_="Warning", reason="FailedScheduling", message=message)
