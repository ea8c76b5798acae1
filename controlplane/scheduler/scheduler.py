"""The scheduler loop: bind each pending pod to the best node that fits.

    informers (pods, nodes) ──► queue of pod keys ──► schedule_one(key)
                                     ▲                     │ filter → score → Bind (CAS)
                                     │                     │ none fits: PodScheduled=False, Unschedulable
        node changes, pods finishing ┘◄── parked pods ◄────┘

It reaches the API over loopback like any client. Between a Bind and the
informer seeing it, the pod is "assumed" on its node, so two pods scheduled
back to back never both take the same free memory. A pod that fits nowhere is
parked, and retried when a node or a bound pod changes (and every
`retry_seconds` as a safety net); errors are retried with skiff.retry back-off.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from controlplane.events import EventRecorder
from controlplane.metrics import Metrics
from controlplane.scheduler import plugins
from controlplane.scheduler.framework import REGISTRY, NodeInfo, unschedulable_message
from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.client import ApiClient, ApiError, Conflict, NotFound
from skiff.informer import Informer, Key
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


class Scheduler:
    def __init__(self, *, client: ApiClient, metrics: Metrics, retry_seconds: float = 30.0,
                 backoff: Backoff = Backoff(initial=0.2, maximum=10.0)) -> None:
        self.client = client
        self.metrics = metrics
        self.retry_seconds = retry_seconds
        self.backoff = backoff
        self.events = EventRecorder(client=client, component=SCHEDULER_NAME)
        self.pods = Informer(client, "Pod")
        self.nodes = Informer(client, "Node")
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._parked: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._assumed: dict[Key, str] = {}  # pod -> node, until the informer shows the binding
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)

    # ------------------------------------------------------------ queue

    def enqueue(self, key: Key) -> None:
        self._parked.discard(key)
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _flush_parked(self) -> None:
        for key in list(self._parked):
            self.enqueue(key)

    async def _on_pod(self, key: Key) -> None:
        pod = self.pods.get(key)
        if pod is None or pod.spec.node_name:
            self._assumed.pop(key, None)
            self._flush_parked()  # capacity may have been freed or taken
        if wants_scheduling(pod):
            self.enqueue(key)

    async def _on_node(self, key: Key) -> None:
        self._flush_parked()

    # ------------------------------------------------------------ loop

    async def run(self) -> None:
        tasks = [self.pods.start(), self.nodes.start()]
        try:
            await self.pods.wait_synced()
            await self.nodes.wait_synced()
            retry = asyncio.create_task(self._periodic_retry())
            tasks.append(retry)
            while True:
                await self.process_next()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _periodic_retry(self) -> None:
        while True:
            await asyncio.sleep(self.retry_seconds)
            self._flush_parked()

    async def process_next(self) -> None:
        key = await self._queue.get()
        self._queued.discard(key)
        try:
            await self.schedule_one(key)
            self._failures.pop(key, None)
        except ApiError as exc:
            attempt = self._failures.get(key, 0)
            self._failures[key] = attempt + 1
            delay = self.backoff.delay(attempt)
            log.warning("scheduling %s/%s failed: %s; retrying in %.1fs", *key, exc, delay)
            asyncio.get_running_loop().call_later(delay, self.enqueue, key)

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
                self.metrics.schedule_attempts.labels("error").inc()
                raise
        self.metrics.schedule_attempts.labels(result).inc()
        self.metrics.scheduling_latency.labels(result).observe(time.perf_counter() - started)

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
