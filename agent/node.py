"""The agent's Node object: registration, heartbeat, and waiting for a pod CIDR.

`NodeAgent.register()` creates the Node (or takes over an existing one of
the same name, keeping its spec: the control plane's IPAM owns spec.podCIDR)
with what this machine is — addresses, capacity, nodeInfo and the port of the
agent's own service — and `heartbeat()` then renews condition Ready=True with
a fresh lastHeartbeatTime every period, each write a compare-and-swap retried
on conflict, so the node-lifecycle controller can tell a live node from a
dead one.

Ready says the node can start pods, not only that the agent lives: the
runtime's health (`Runtime.check_health`, which also replaces a dead zygote)
is asked every `health_period_seconds`, and a change is written at once —
Ready=False (KubeletNotReady, "container runtime is down: ...") while the
runtime cannot start containers, as the kubelet reports it, so the scheduler
stops sending pods to a node that would leave them ContainerCreating.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from google.protobuf.timestamp_pb2 import Timestamp

from agent import pressure as pressure_, procfs
from agent.clock import Clock, SystemClock
from agent.status import timestamp
from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.client import AlreadyExists, ApiClient, ApiError, Conflict, NotFound
from skiff.retry import Backoff

log = logging.getLogger(__name__)

RUNTIME_VERSION = "skiff://0.1.0"
AGENT_VERSION = "v0.1.0"
MAX_PODS = 110   # kubelet's default --max-pods
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


@dataclass(frozen=True)
class NodeIdentity:
    name: str
    internal_ip: str
    agent_port: int
    metrics_address: str = ""   # HOST:PORT of /metrics and /metrics/cadvisor; "" none served
    # More annotations the agent owns on its Node, e.g. skiff.io/pod-egress (decision 30).
    annotations: tuple[tuple[str, str], ...] = ()
    # The node's pod capacity (`--max-pods`): capacity and allocatable pods, which the scheduler reads.
    max_pods: int = MAX_PODS


# Where the control plane's http_sd lists (controlplane/discovery.py) find this agent's metrics.
METRICS_ADDRESS_ANNOTATION = "skiff.io/metrics-address"
# The node's pod egress, "nat" or "none" (`skiff describe node` shows it; decision 30).
POD_EGRESS_ANNOTATION = "skiff.io/pod-egress"


def memory_total_bytes(path: Path = Path("/proc/meminfo")) -> int:
    total = procfs.meminfo(path).get("MemTotal")
    if total is None:
        raise RuntimeError(f"{path}: no MemTotal line")
    return total


def os_image(os_release: Path = Path("/etc/os-release")) -> str:
    try:
        for line in os_release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def cgroup_version() -> str:
    """"v2" on a unified-only host, "v1" where the controllers sit in v1 hierarchies."""
    return "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "v1"


def machine_status(identity: NodeIdentity) -> types_pb2.NodeStatus:
    """What this machine is: capacity, addresses, nodeInfo, the agent's endpoint."""
    status = types_pb2.NodeStatus()
    memory_kib = memory_total_bytes() // 1024
    for field in (status.capacity, status.allocatable):
        field["cpu"] = str(os.cpu_count() or 1)
        field["memory"] = f"{memory_kib}Ki"
        field["pods"] = str(identity.max_pods)
    status.addresses.add(type="InternalIP", address=identity.internal_ip)
    status.addresses.add(type="Hostname", address=identity.name)
    uname = os.uname()
    try:
        machine_id = Path("/etc/machine-id").read_text().strip()
    except OSError:
        machine_id = ""
    status.node_info.CopyFrom(types_pb2.NodeSystemInfo(
        machine_id=machine_id, kernel_version=uname.release, os_image=os_image(),
        architecture=_ARCH.get(uname.machine, uname.machine), operating_system=platform.system().lower(),
        container_runtime_version=RUNTIME_VERSION, kubelet_version=AGENT_VERSION,
        cgroup_version=cgroup_version()))
    status.daemon_endpoints.kubelet_endpoint.port = identity.agent_port
    return status


WATCH_FAILING = "PodWatchFailing"   # Ready=False: the agent cannot watch its pods (issue 15)


def set_ready(status: types_pb2.NodeStatus, *, now_clock: Clock, problem: str | None = None,
              reason: str = "KubeletNotReady") -> None:
    """Condition Ready with a new heartbeat: True, or False with `problem` as
    the message; the transition time moves only on a change."""
    value, reason, message = (("False", reason, problem) if problem else
                              ("True", "KubeletReady", "skiff agent is posting ready status"))
    meta.set_condition(status.conditions, type_="Ready", status=value, reason=reason, message=message,
                       now=timestamp(now_clock.now()), heartbeat=True)


class NodeAgent:
    def __init__(self, *, client: ApiClient, identity: NodeIdentity, clock: Clock | None = None,
                 period_seconds: float = 10.0,
                 runtime_health: Callable[[], Awaitable[str | None]] | None = None,
                 health_period_seconds: float = 1.0,
                 pressure: Callable[[], list[pressure_.Condition]] | None = None,
                 watch_health: Callable[[], str | None] | None = None,
                 images: Callable[[], list[types_pb2.ContainerImage]] | None = None) -> None:
        self.client = client
        self.images = images   # status.images: what this node's store holds (blocking; run in a thread)
        # Why the agent's pod informer cannot watch (past its bound), or None: Ready=False PodWatchFailing.
        self.watch_health = watch_health
        # MemoryPressure / DiskPressure / PIDPressure, measured at each heartbeat (agent.pressure).
        self.pressure = pressure
        self.identity = identity
        self.clock = clock or SystemClock()
        self.period_seconds = period_seconds
        self.runtime_health = runtime_health
        self.health_period_seconds = health_period_seconds
        self.node: types_pb2.Node | None = None
        self._reported_problem: str | None = None   # what the last written Ready said
        # The status's blocking reads (images, pressure) on a thread of their own: in the loop's
        # default pool they queued behind 100 pods' network attaches (serial, one lock) for more
        # than the 8 s grace, and the node was marked unreachable and its pods evicted.
        self._status_thread: concurrent.futures.ThreadPoolExecutor | None = None

    async def _in_status_thread(self, fn):
        if self._status_thread is None:
            self._status_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="node-status")
        return await asyncio.get_running_loop().run_in_executor(self._status_thread, fn)

    async def register(self) -> types_pb2.Node:
        """Create or take over this node's object; retried until the control plane answers."""
        failures = 0
        backoff = Backoff(initial=0.2, maximum=5.0)
        while True:
            try:
                self.node = await self._register_once()
                log.info("node %s registered", self.identity.name)
                return self.node
            except ApiError as exc:
                delay = backoff.delay(failures)
                failures += 1
                log.warning("node %s: registration failed (%s); retrying in %.1fs", self.identity.name, exc, delay)
                await asyncio.sleep(delay)

    async def _register_once(self) -> types_pb2.Node:
        node = types_pb2.Node(api_version="v1", kind="Node")
        node.metadata.name = self.identity.name
        node.metadata.labels.update({"kubernetes.io/hostname": self.identity.name, "kubernetes.io/os": "linux",
                                     "kubernetes.io/arch": _ARCH.get(os.uname().machine, os.uname().machine)})
        if self.identity.metrics_address:
            node.metadata.annotations[METRICS_ADDRESS_ANNOTATION] = self.identity.metrics_address
        node.metadata.annotations.update(dict(self.identity.annotations))
        try:
            created = await self.client.create(node)
        except AlreadyExists:
            created = await self.client.get("Node", self.identity.name, "")
            annotations = created.metadata.annotations
            stale = any(annotations.get(k) != v for k, v in self.identity.annotations)
            annotations.update(dict(self.identity.annotations))
            if stale or annotations.get(METRICS_ADDRESS_ANNOTATION, "") != self.identity.metrics_address:
                if self.identity.metrics_address:
                    annotations[METRICS_ADDRESS_ANNOTATION] = self.identity.metrics_address
                elif METRICS_ADDRESS_ANNOTATION in annotations:
                    del annotations[METRICS_ADDRESS_ANNOTATION]
                created = await self.client.update(created)   # a Conflict: register() tries again
        return await self._write_status(created)

    async def _write_status(self, node: types_pb2.Node) -> types_pb2.Node:
        """Machine facts + Ready heartbeat onto the stored node; CAS, re-read on conflict."""
        for _ in range(10):
            updated = types_pb2.Node()
            updated.CopyFrom(node)
            conditions = list(node.status.conditions)
            updated.status.CopyFrom(machine_status(self.identity))
            updated.status.conditions.extend(conditions)
            problem, reason = await self._problem()
            set_ready(updated.status, now_clock=self.clock, problem=problem, reason=reason)
            if self.images is not None:
                try:
                    updated.status.images.extend(await self._in_status_thread(self.images))
                except (OSError, ValueError) as exc:
                    log.warning("node %s: listing its images failed: %s", self.identity.name, exc)
            if self.pressure is not None:
                now = timestamp(self.clock.now())
                try:
                    for cond in await self._in_status_thread(self.pressure):
                        meta.set_condition(updated.status.conditions, type_=cond.type,
                                           status="True" if cond.status else "False", reason=cond.reason,
                                           message=cond.message, now=now, heartbeat=True)
                except OSError as exc:
                    log.warning("node %s: measuring pressure failed: %s", self.identity.name, exc)
            try:
                written = await self.client.update_status(updated)
                if problem != self._reported_problem:
                    log.log(logging.WARNING if problem else logging.INFO, "node %s: %s", self.identity.name,
                            f"not ready: {problem}" if problem else "ready")
                self._reported_problem = problem
                return written
            except Conflict:
                node = await self.client.get("Node", self.identity.name, "")
        raise ApiError(f"node {self.identity.name}: status update kept conflicting")

    async def heartbeat_once(self) -> types_pb2.Node:
        """One write, not a read and a write: the heartbeat goes onto the node as last written
        (its resourceVersion); if anyone changed the node since, that is a Conflict and
        _write_status reads it then. (Kubernetes' kubelet reads from the API server's cache;
        here a read is an etcd range, and 1000 hollow nodes' heartbeats doubled the calls.)"""
        try:
            current = self.node if self.node is not None else await self.client.get("Node", self.identity.name, "")
            self.node = await self._write_status(current)
        except NotFound:  # deleted by someone: register again
            self.node = await self._register_once()
        return self.node

    async def runtime_problem(self) -> str | None:
        """Why the runtime cannot start containers now, or None."""
        if self.runtime_health is None:
            return None
        try:
            return await self.runtime_health()
        except Exception as exc:  # noqa: BLE001 - a failing check is itself the answer
            return f"container runtime health check failed: {type(exc).__name__}: {exc}"

    async def _problem(self) -> tuple[str | None, str]:
        """Why Ready is False (None: it is True), and the condition's reason."""
        problem = await self.runtime_problem()
        if problem is None and self.watch_health is not None and (watching := self.watch_health()):
            return f"the agent cannot watch its pods: {watching}", WATCH_FAILING
        return problem, "KubeletNotReady"

    async def heartbeat(self) -> None:
        """Renew the Ready condition every period until cancelled; between
        heartbeats, check the runtime every health period and write a change
        of readiness at once."""
        waited = 0.0
        while True:
            step = min(self.period_seconds, self.health_period_seconds) \
                if self.runtime_health or self.watch_health else self.period_seconds
            await asyncio.sleep(step)
            waited += step
            if waited < self.period_seconds and (await self._problem())[0] == self._reported_problem:
                continue
            waited = 0.0
            try:
                await self.heartbeat_once()
            except ApiError as exc:
                log.warning("node %s: heartbeat failed: %s", self.identity.name, exc)

    async def wait_for_pod_cidr(self, *, poll_seconds: float = 1.0) -> str:
        """spec.podCIDR once the control plane's node IPAM has assigned it."""
        waited = 0.0
        while True:
            try:
                # From the API server's watch cache (resourceVersion 0), as kubelet reads its Node:
                # a thousand nodes polling at start are no thousand etcd reads a second.
                node = await self.client.get("Node", self.identity.name, "", resource_version="0")
                if node.spec.pod_cidr:
                    return node.spec.pod_cidr
            except ApiError as exc:
                log.warning("node %s: reading spec.podCIDR failed: %s", self.identity.name, exc)
            if waited and waited % 30 < poll_seconds:
                log.info("node %s: still waiting for spec.podCIDR from the control plane", self.identity.name)
            await asyncio.sleep(poll_seconds)
            waited += poll_seconds
