"""The scheduler: binds each pending pod to the best node that fits (kube-scheduler's loop).

    informers (pods, nodes, namespaces, PDBs) ──► cache: NodeInfo per node, kept current per event
         │ pending pod added/changed                    │
         ▼                                              ▼
    SchedulingQueue (queue.py) ──pop──► cycle (cycle.py): snapshot → pre_filter → filter → score
         ▲   ▲                              │ a node: assume the pod there, bind in a task of its own
         │   │                              │        (the next cycle does not wait for the API)
         │   └── back-off, errors           │ none: preemption (preemption.py) → evict victims,
         └────── cluster events ◄───────────┘       nominatedNodeName; PodScheduled=False with
                 (node added/changed,                Kubernetes' message; the pod waits in the
                  pod deleted) move parked pods      unschedulable set

It reaches the API over loopback like any client and shares the process's
informers. Between the cycle's choice and the informer seeing the binding the
pod is "assumed" on its node, so pods scheduled back to back never both take
the same free memory; a failed bind forgets it and queues the pod again.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Hashable

from google.protobuf.message import Message

from controlplane.events import EventRecorder
from controlplane.metrics import Metrics
from controlplane.scheduler import plugins, preemption
from controlplane.scheduler.cycle import Decision, Profile
from controlplane.scheduler.cycle import schedule as run_cycle
from controlplane.scheduler.framework import (NodeInfo, Resources, Snapshot, has_affinity, pod_non_zero_requests,
                                              pod_priority, pod_requests)
from controlplane.scheduler.queue import SchedulingQueue
from proto.skiff.v1 import types_pb2
from skiff.api import kinds, meta
from skiff.api.quantity import QuantityError
from skiff.client import ApiClient, ApiError, Conflict, NotFound
from skiff.controller import Controller, EventHandler, Key, SharedInformerFactory

log = logging.getLogger(__name__)
SCHEDULER_NAME = "default-scheduler"
TERMINAL_PHASES = ("Succeeded", "Failed")
DEFAULT_PROFILE = Profile(filters=plugins.DEFAULT_FILTERS, scores=plugins.DEFAULT_SCORES)
BACKOFF_FLUSH_SECONDS = 1.0
UNSCHEDULABLE_FLUSH_SECONDS = 30.0
_NOTHING = (Resources(), Resources())
DISRUPTION_TARGET_MESSAGE = f"{SCHEDULER_NAME}: preempting to accommodate a higher priority pod"


def schedule(pod: types_pb2.Pod, nodes: list[NodeInfo] | Snapshot, *, filters: tuple[str, ...] = plugins.DEFAULT_FILTERS,
             scores: tuple[tuple[str, int], ...] = plugins.DEFAULT_SCORES, percentage: int = 0) -> Decision:
    """Pure: the node for `pod`, or None and the reason as Kubernetes words it (no preemption)."""
    return run_cycle(pod, nodes, Profile(filters, scores, percentage))


def wants_scheduling(pod: types_pb2.Pod | None) -> bool:
    return (pod is not None and not pod.spec.node_name and not pod.metadata.HasField("deletion_timestamp")
            and pod.spec.scheduler_name in ("", SCHEDULER_NAME)
            and pod.status.phase not in TERMINAL_PHASES)


def _counts(pod: types_pb2.Pod | None) -> bool:
    return pod is not None and pod.status.phase not in TERMINAL_PHASES


def _scheduling_view(node: types_pb2.Node | None) -> tuple:
    """What of a node can change where pods fit (heartbeats cannot)."""
    if node is None:
        return ()
    return (node.spec.SerializeToString(deterministic=True), sorted(node.metadata.labels.items()),
            sorted(node.status.allocatable.items()), sorted((c.type, c.status) for c in node.status.conditions),
            len(node.status.images))


class Scheduler(Controller):
    name = "scheduler"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory, metrics: Metrics,
                 profile: Profile = DEFAULT_PROFILE, queue: SchedulingQueue | None = None) -> None:
        events = EventRecorder(client=client, component=SCHEDULER_NAME)
        super().__init__(recorder=events, metrics=factory.metrics)
        self.client = client
        self.metrics = metrics
        self.profile = profile
        self.events = events
        self.scheduling_queue = queue or SchedulingQueue()
        self.pods = self.uses(factory.informer("Pod"))
        self.nodes = self.uses(factory.informer("Node"))
        self.namespaces = self.uses(factory.informer("Namespace"))
        self.budgets_informer = None
        try:
            kinds.kind_named("PodDisruptionBudget")
            self.budgets_informer = self.uses(factory.informer("PodDisruptionBudget"))
        except kinds.UnknownKind:
            pass   # no PDB kind in this build: preemption counts no violations
        self._assumed: dict[Key, str] = {}              # pod -> node, until the informer shows the binding
        self._on_node: dict[str, dict[Key, types_pb2.Pod]] = {}   # the cache: pods counted per node
        self._infos: dict[str, NodeInfo] = {}           # built lazily, dropped when the node's pods change
        # Per node, kept current pod by pod (Kubernetes' NodeInfo AddPod/RemovePod): the requests of
        # its pods summed, and its pods with affinity terms, so a NodeInfo is built without a walk
        # over the node's pods in Python (a node with hundreds of pods changes on every status write).
        self._sums: dict[str, tuple[Resources, Resources]] = {}
        self._with_terms: dict[str, set[Key]] = {}   # node -> its pods with affinity terms
        self._where: dict[Key, str] = {}                # pod -> the node it is counted on in _on_node
        self._requests_memo: dict[Key, tuple[types_pb2.Pod, Resources, Resources]] = {}   # for _where's pods
        # The last snapshot's nodes, kept between cycles: only nodes changed since (_dirty) are rebuilt,
        # and the aggregates the plugins ask for (nodes with images, with affinity pods) kept with them.
        self._order_infos: list[NodeInfo] = []
        self._by_name: dict[str, NodeInfo] = {}
        self._dirty: set[str] = set()
        self._with_images: set[str] = set()
        self._with_affinity: set[str] = set()
        self._nominated: dict[Key, types_pb2.Pod] = {}
        self._binding: set[asyncio.Task] = set()
        self._next_start = 0
        self._node_order: list[str] | None = None     # node names, sorted; reset when nodes come or go
        self.pods.add_event_handler(EventHandler(on_add=self._pod_added, on_update=self._pod_updated,
                                                 on_delete=self._pod_deleted))
        self.nodes.add_event_handler(EventHandler(on_add=self._node_changed, on_update=self._node_updated,
                                                  on_delete=self._node_changed))

    # ------------------------------------------------------------ cache and queue, from events

    def enqueue(self, key: Hashable) -> None:
        pod = self.pods.get(key)  # type: ignore[arg-type]
        if wants_scheduling(pod):
            self.scheduling_queue.add(key, pod_priority(pod))

    def _invalidate(self, node: str) -> None:
        self._infos.pop(node, None)
        self._dirty.add(node)

    def _place(self, key: Key, pod: types_pb2.Pod | None) -> None:
        """Count `pod` (or nothing) against its node in the cache."""
        node = pod.spec.node_name if pod is not None else ""
        if not node and key in self._assumed and _counts(pod):
            node = self._assumed[key]
        if not _counts(pod):
            node = ""
        was = self._where.pop(key, None)
        if was is not None:
            old = self._on_node[was].get(key)
            if old is not None:
                self._count(was, key, old, -1)
            if was != node:
                self._on_node[was].pop(key, None)
                self._invalidate(was)
        if not node:
            self._requests_memo.pop(key, None)
        if node:
            self._on_node.setdefault(node, {})[key] = pod   # type: ignore[assignment]
            self._where[key] = node
            self._count(node, key, pod, 1)   # type: ignore[arg-type]
            self._invalidate(node)
        if pod is not None and pod.status.nominated_node_name and wants_scheduling(pod):
            self._nominated[key] = pod
        else:
            self._nominated.pop(key, None)

    def _count(self, node: str, key: Key, pod: types_pb2.Pod, sign: int) -> None:
        """Add (sign 1) or take away (-1) a pod in its node's sums and affinity pods, as
        NodeInfo.build counts it: requests that do not parse are not counted."""
        if has_affinity(pod):
            if sign > 0:
                self._with_terms.setdefault(node, set()).add(key)
            else:
                self._with_terms.get(node, set()).discard(key)
        try:
            want, want_non_zero = self._requests(pod)
        except QuantityError:
            return
        requested, non_zero = self._sums.get(node, _NOTHING)
        self._sums[node] = ((requested + want, non_zero + want_non_zero) if sign > 0 else
                            (requested - want, non_zero - want_non_zero))

    def _pod_added(self, key: Key, pod: Message) -> None:
        self._pod_changed(key, None, pod)

    def _pod_updated(self, key: Key, old: Message, new: Message) -> None:
        self._pod_changed(key, old, new)

    def _pod_changed(self, key: Key, old: types_pb2.Pod | None, pod: types_pb2.Pod) -> None:
        if pod.spec.node_name:
            self._assumed.pop(key, None)
            self.scheduling_queue.delete(key)
        self._place(key, pod)
        if wants_scheduling(pod):
            # Only a change of what scheduling reads moves a parked pod (not the status this scheduler wrote).
            if (old is None or self.scheduling_queue.where(key) is None or old.spec != pod.spec
                    or old.metadata.labels != pod.metadata.labels):
                self.scheduling_queue.add(key, pod_priority(pod))
        elif not pod.spec.node_name:
            self.scheduling_queue.delete(key)
        finished = old is not None and _counts(old) and not _counts(pod)
        if finished or (old is not None and old.spec.node_name and old.metadata.labels != pod.metadata.labels):
            self.scheduling_queue.move_all()   # room freed, or labels that affinity reads changed

    def _pod_deleted(self, key: Key, pod: Message) -> None:
        self._assumed.pop(key, None)
        self._place(key, None)
        self.scheduling_queue.delete(key)
        if pod.spec.node_name:
            self.scheduling_queue.move_all()

    def _node_changed(self, key: Key, node: Message) -> None:
        self._node_order = None
        self._invalidate(node.metadata.name)
        self.scheduling_queue.move_all()

    def _node_updated(self, key: Key, old: Message, new: Message) -> None:
        self._invalidate(new.metadata.name)
        if _scheduling_view(old) != _scheduling_view(new):
            self.scheduling_queue.move_all()

    def snapshot(self, pod: types_pb2.Pod | None = None) -> Snapshot:
        """The nodes by name with their pods; pods nominated to a node with at least `pod`'s priority
        count there too (their room is promised)."""
        if self._node_order is None:
            self._node_order = sorted(n.metadata.name for n in self.nodes.list())
            self._order_infos = [self._node_info(name) for name in self._node_order]
            self._order_infos = [i for i in self._order_infos if i is not None]
            self._by_name = {i.name: i for i in self._order_infos}
            self._position = {i.name: n for n, i in enumerate(self._order_infos)}
            self._with_images = {i.name for i in self._order_infos if i.node.status.images}
            self._with_affinity = {i.name for i in self._order_infos if i.pods_with_affinity}
            self._dirty.clear()
        elif self._dirty:
            # Only the nodes whose pods or object changed since the last cycle (the informer's events
            # say which); node order is unchanged (nodes coming or going reset it above).
            for name in self._dirty:
                old = self._by_name.get(name)
                if old is None:
                    continue
                info = self._node_info(name)
                if info is None:   # gone; its delete event resets the order before the next cycle
                    self._node_order = None
                    return self.snapshot(pod)
                self._order_infos[self._position[name]] = self._by_name[name] = info
                (self._with_images.add if info.node.status.images else self._with_images.discard)(name)
                (self._with_affinity.add if info.pods_with_affinity else self._with_affinity.discard)(name)
            self._dirty.clear()
        infos = self._order_infos
        labels = {ns.metadata.name: dict(ns.metadata.labels) for ns in self.namespaces.list()}
        if pod is None or not self._nominated:
            with_affinity = [i for i in infos if i.name in self._with_affinity] if self._with_affinity else []
            return Snapshot(infos, labels, by_name=dict(self._by_name), have_images=bool(self._with_images),
                            have_pods_with_affinity=with_affinity)
        if pod is not None and self._nominated:
            priority = pod_priority(pod)
            by_name = {i.name: i for i in infos}
            own = (pod.metadata.namespace, pod.metadata.name)
            for key, other in self._nominated.items():
                target = by_name.get(other.status.nominated_node_name)
                if key != own and target is not None and pod_priority(other) >= priority:
                    by_name[target.name] = target.with_pod(other)
            infos = [by_name[i.name] for i in infos]
        return Snapshot(infos, labels)

    def _node_info(self, name: str) -> NodeInfo | None:
        node = self.nodes.get(("", name))
        if node is None:
            return None
        info = self._infos.get(name)
        if info is None or info.node is not node:
            requested, non_zero = self._sums.get(name, _NOTHING)
            info = self._infos[name] = NodeInfo(node, tuple(self._on_node.get(name, {}).values()), requested,
                                                non_zero)
            # NodeInfo's own derivation of it, from the cache's (the same pods, in the node's order).
            with_terms = self._with_terms.get(name)
            info.__dict__["pods_with_affinity"] = tuple(
                p for k, p in self._on_node[name].items() if k in with_terms) if with_terms else ()
        return info

    def _requests(self, pod: types_pb2.Pod) -> tuple[Resources, Resources]:
        """pod_requests and pod_non_zero_requests of a pod counted on a node, parsed once per pod version."""
        key = (pod.metadata.namespace, pod.metadata.name)
        hit = self._requests_memo.get(key)
        if hit is None or hit[0] is not pod:
            hit = self._requests_memo[key] = (pod, pod_requests(pod), pod_non_zero_requests(pod))
        return hit[1], hit[2]

    def node_infos(self) -> list[NodeInfo]:
        return self.snapshot().nodes

    def budgets(self) -> list[preemption.Budget]:
        if self.budgets_informer is None:
            return []
        return [preemption.Budget.of(pdb) for pdb in self.budgets_informer.list()]

    # ------------------------------------------------------------ loop

    async def run(self) -> None:
        for informer in self.informers:
            informer.start()
        await self.wait_synced()
        # A run again after a cancel (a leader that lost and regained its lease) starts from the
        # informers: cancelled binds left pods assumed, a cancelled cycle left one "in flight".
        q = self.scheduling_queue
        self.scheduling_queue = SchedulingQueue(clock=q.clock, initial_backoff=q.initial_backoff,
                                                max_backoff=q.max_backoff, max_unschedulable=q.max_unschedulable)
        self._assumed.clear()
        self._on_node.clear()
        self._infos.clear()
        self._where.clear()
        self._requests_memo.clear()
        self._sums.clear()
        self._with_terms.clear()
        self._dirty.clear()
        self._nominated.clear()
        self._node_order = None
        for key in self.pods.keys():
            self._place(key, self.pods.get(key))
            self.enqueue(key)
        tasks = [asyncio.create_task(self._loop(), name="scheduler-loop"),
                 asyncio.create_task(self._every(BACKOFF_FLUSH_SECONDS,
                                                 self.scheduling_queue.flush_backoff_completed),
                                     name="scheduler-flush-backoff"),
                 asyncio.create_task(self._every(UNSCHEDULABLE_FLUSH_SECONDS,
                                                 self.scheduling_queue.flush_unschedulable_leftover),
                                     name="scheduler-flush-unschedulable")]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in [*tasks, *self._binding]:
                task.cancel()
            await asyncio.gather(*tasks, *self._binding, return_exceptions=True)

    @staticmethod
    async def _every(seconds: float, fn) -> None:
        while True:
            await asyncio.sleep(seconds)
            fn()

    async def _loop(self) -> None:
        while True:
            key = await self.scheduling_queue.pop()
            cycle = self.scheduling_queue.scheduling_cycle
            try:
                await self.schedule_one(key, cycle)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("scheduling %s/%s failed: %s; retrying after back-off", *key, exc,
                            exc_info=not isinstance(exc, ApiError))
                self.scheduling_queue.error(key)

    async def schedule_one(self, key: Key, cycle: int = 0) -> None:
        pod = self.pods.get(key)
        if not wants_scheduling(pod) or key in self._assumed:
            self.scheduling_queue.done(key)
            return
        started = time.perf_counter()
        snapshot = self.snapshot(pod)
        decision = run_cycle(pod, snapshot, self.profile, start=self._next_start,
                             nominated=pod.status.nominated_node_name)
        if snapshot.nodes:
            self._next_start = (self._next_start + decision.evaluated) % len(snapshot.nodes)
        if decision.node_name is None:
            result = "unschedulable"
            outcome = preemption.preempt(pod, snapshot, decision.statuses, self.profile.filters, self.budgets())
            message = decision.message + (f" {outcome.message}" if outcome.message else "")
            self.scheduling_queue.unschedulable(key, cycle)
            nominated = ""
            if outcome.candidate is not None:
                nominated = outcome.candidate.node
                await self._evict(pod, outcome.candidate)
            await self._mark_unschedulable(pod, message, nominated)
        else:
            result = "scheduled"
            self._assumed[key] = decision.node_name
            self._place(key, pod)
            self.scheduling_queue.done(key)
            task = asyncio.create_task(self._bind(key, pod, decision.node_name), name=f"bind-{key[1]}")
            self._binding.add(task)
            task.add_done_callback(self._binding.discard)
        self.metrics.schedule_attempts.labels(result, SCHEDULER_NAME).inc()
        self.metrics.scheduling_latency.labels(result, SCHEDULER_NAME).observe(time.perf_counter() - started)

    async def _bind(self, key: Key, pod: types_pb2.Pod, node: str) -> None:
        try:
            await self.client.bind(pod.metadata.name, node, pod.metadata.namespace,
                                   resource_version=pod.metadata.resource_version)
        except (Conflict, NotFound):
            # The pod changed or went away meanwhile. Its update may already have come while it was
            # assumed (and been dropped as "being bound"), so it is queued again here, not left to news.
            self._forget(key)
            self.enqueue(key)
            return
        except ApiError as exc:
            log.warning("binding %s/%s to %s failed: %s", *key, node, exc)
            self._forget(key)
            self.metrics.schedule_attempts.labels("error", SCHEDULER_NAME).inc()
            self.enqueue(key)
            return
        log.info("bound %s/%s to %s", *key, node)
        await self.events.record(pod, type_="Normal", reason="Scheduled",
                                 message=f"Successfully assigned {meta.namespaced_name(pod)} to {node}")

    def _forget(self, key: Key) -> None:
        if self._assumed.pop(key, None) is not None:
            self._place(key, self.pods.get(key))

    async def _evict(self, preemptor: types_pb2.Pod, candidate: preemption.Candidate) -> None:
        """Delete the victims gracefully, each marked DisruptionTarget first, as Kubernetes does."""
        for victim in candidate.victims:
            marked = meta.copy(victim)
            if meta.set_condition(marked.status.conditions, type_="DisruptionTarget", status="True",
                                  reason="PreemptionByScheduler", message=DISRUPTION_TARGET_MESSAGE):
                try:
                    await self.client.update_status(marked)
                except (Conflict, NotFound):
                    pass
            try:
                await self.client.delete("Pod", victim.metadata.name, victim.metadata.namespace,
                                         precondition_uid=victim.metadata.uid)
            except NotFound:
                continue
            log.info("preempted %s on %s for %s", meta.namespaced_name(victim), candidate.node,
                     meta.namespaced_name(preemptor))
            await self.events.record(victim, type_="Normal", reason="Preempted",
                                     message=f"Preempted by pod {preemptor.metadata.uid} on node {candidate.node}")
        # Lower-priority pods nominated to this node may no longer fit there: they lose the nomination.
        priority = pod_priority(preemptor)
        own = (preemptor.metadata.namespace, preemptor.metadata.name)
        for key, other in list(self._nominated.items()):
            if key != own and other.status.nominated_node_name == candidate.node and pod_priority(other) < priority:
                cleared = meta.copy(other)
                cleared.status.nominated_node_name = ""
                try:
                    await self.client.update_status(cleared)
                except (Conflict, NotFound):
                    pass

    async def _mark_unschedulable(self, pod: types_pb2.Pod, message: str, nominated: str) -> None:
        updated = meta.copy(pod)
        changed = meta.set_condition(updated.status.conditions, type_="PodScheduled", status="False",
                                     reason="Unschedulable", message=message)
        if updated.status.nominated_node_name != nominated:
            updated.status.nominated_node_name = nominated
            changed = True
        if not changed:
            return
        log.info("%s: %s", meta.namespaced_name(pod), message)
        try:
            await self.client.update_status(updated)
        except (Conflict, NotFound):
            return  # a newer version is on its way through the informer; it is scheduled again then
        await self.events.record(pod, type_="Warning", reason="FailedScheduling", message=message)
