"""Probe workers: liveness, readiness and startup probes of running containers.

    pod worker: container running ──► ProbeManager.ensure(pod, container, ...)
        a worker (an asyncio task, no thread) per probe of that container attempt:
            sleep initialDelaySeconds
            every periodSeconds: run the handler (timeoutSeconds) ──► ProbeState.observe
                result changed ──► on_change(pod uid) (the pod worker rewrites the status)
                failure ──► Warning Unhealthy event "<Kind> probe failed: ..."
                liveness/startup result failed ──► kill requested, worker on hold
    pod worker: kill_requested(id) ──► Killing event, stop, restart per restartPolicy

Rules as kubelet's (pkg/kubelet/prober): a container with a startup probe is
not `started` (and its liveness and readiness probes do not run) until the
startup probe succeeds once; readiness starts failed, liveness successful;
after a liveness or startup failure the worker holds until the next container
attempt (a new id), so a container is restarted once per failureThreshold
window. A container without a readiness probe is ready once started.

Workers are keyed by container id: a restarted container gets fresh workers
and fresh results, and `forget` drops an attempt that is over.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from agent.prober import checks
from agent.prober.state import LIVENESS, READINESS, STARTUP, ProbeState
from proto.skiff.v1 import types_pb2

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
EventSink = Callable[[types_pb2.Pod, str, str, str], None]   # (pod, type, reason, message)
_FIELDS = ((STARTUP, "startup_probe"), (LIVENESS, "liveness_probe"), (READINESS, "readiness_probe"))


@dataclass
class Target:
    """Where a container's probes go."""
    pod: types_pb2.Pod
    container: types_pb2.Container
    container_id: str
    netns: Path | None       # None: the node's network namespace (hostNetwork)
    pod_ip: str

    @classmethod
    def of(cls, pod: types_pb2.Pod, container: types_pb2.Container, *, container_id: str, netns: Path | None,
           pod_ip: str) -> Target:
        """A target keeping only what probes read: the pod's identity (events, logs) and the
        container's name, ports and probes. It lives as long as the container attempt, and a
        decoded Pod is 5-8 KiB (a sub-message keeps its whole Pod alive): one per container
        was a tenth of the agent's memory at 500 pods."""
        ref = types_pb2.Pod()
        ref.metadata.name, ref.metadata.namespace, ref.metadata.uid = (
            pod.metadata.name, pod.metadata.namespace, pod.metadata.uid)
        probed = types_pb2.Container(name=container.name)
        if any(container.HasField(name) for _, name in _FIELDS):
            probed.ports.extend(container.ports)
            for _, name in _FIELDS:
                if container.HasField(name):
                    getattr(probed, name).CopyFrom(getattr(container, name))
        return cls(pod=ref, container=probed, container_id=container_id, netns=netns, pod_ip=pod_ip)


@dataclass
class _Attempt:
    """The probes of one container attempt."""
    target: Target
    states: dict[str, ProbeState] = field(default_factory=dict)
    tasks: list[asyncio.Task] = field(default_factory=list)
    kill: tuple[str, float | None] | None = None   # (kind, probe-level grace) once a kill is due


class Wheel:
    """The probe workers' sleeps on shared timers (issue 10, the probe CPU
    budget): a sleep ends at the first RESOLUTION boundary at or after its
    deadline, and each boundary with sleepers is one loop timer, so 300
    workers sleeping a second cost a handful of timers a second, not 300
    (each a heap entry whose ordering runs Python code)."""

    RESOLUTION = 0.05

    def __init__(self) -> None:
        self._slots: dict[int, list[asyncio.Future]] = {}

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        key = math.ceil((loop.time() + seconds) / self.RESOLUTION)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = []
            loop.call_at(key * self.RESOLUTION, self._wake, key)
        future = loop.create_future()
        slot.append(future)
        await future

    def _wake(self, key: int) -> None:
        for future in self._slots.pop(key, ()):
            if not future.done():
                future.set_result(None)


class ProbeManager:
    def __init__(self, *, runtime: checks.Exec, on_change: Callable[[str], None], events: EventSink | None = None,
                 sockets: checks.Sockets | None = None, sleep: Sleep | None = None) -> None:
        self.runtime = runtime
        self.on_change = on_change
        self.events = events
        self._sockets = sockets
        self.sleep = sleep or Wheel().sleep
        self._exchanges: checks.Exchanges | None = None
        self._attempts: dict[str, _Attempt] = {}

    @property
    def sockets(self) -> checks.Sockets:
        if self._sockets is None:   # opened on first use: a node without network probes never setns()
            self._sockets = checks.NetnsSockets()
        return self._sockets

    @property
    def exchanges(self) -> checks.Exchanges:
        if self._exchanges is None:   # made on the loop, at the first network probe
            self._exchanges = checks.Exchanges(asyncio.get_running_loop())
        return self._exchanges

    # ------------------------------------------------------------ what the pod worker asks

    def ensure(self, pod: types_pb2.Pod, container: types_pb2.Container, *, container_id: str,
               netns: Path | None, pod_ip: str) -> None:
        """Start the probes of this container attempt, once (idempotent; every sync of a running
        container asks): its Target (what probes read) is made on the first call only."""
        cid = container_id
        if cid in self._attempts:
            self._attempts[cid].target.pod_ip = pod_ip or self._attempts[cid].target.pod_ip
            return
        target = Target.of(pod, container, container_id=cid, netns=netns, pod_ip=pod_ip)
        attempt = self._attempts[cid] = _Attempt(target=target)
        for kind, name in _FIELDS:
            if target.container.HasField(name):
                probe = getattr(target.container, name)
                attempt.states[kind] = ProbeState.of(kind, success_threshold=probe.success_threshold,
                                                     failure_threshold=probe.failure_threshold)
                attempt.tasks.append(asyncio.create_task(self._worker(attempt, kind, probe),
                                                         name=f"probe-{kind.lower()}-{cid}"))

    def started(self, container_id: str) -> bool:
        """The startup probe has succeeded (or there is none)."""
        attempt = self._attempts.get(container_id)
        state = attempt.states.get(STARTUP) if attempt else None
        return state is None or state.result is True

    def ready(self, container_id: str) -> bool:
        """Started and, with a readiness probe, its last result is success."""
        attempt = self._attempts.get(container_id)
        if attempt is None:
            return True
        state = attempt.states.get(READINESS)
        return self.started(container_id) and (state is None or state.result is True)

    def kill_requested(self, container_id: str) -> tuple[str, float | None] | None:
        """(probe kind, the probe's terminationGracePeriodSeconds or None) when a
        liveness or startup probe has failed and the container must be killed."""
        attempt = self._attempts.get(container_id)
        return attempt.kill if attempt else None

    def forget(self, container_id: str) -> None:
        attempt = self._attempts.pop(container_id, None)
        if attempt is not None:
            for task in attempt.tasks:
                task.cancel()

    def forget_pod(self, pod_uid: str) -> None:
        netns = set()
        for cid, attempt in list(self._attempts.items()):
            if attempt.target.pod.metadata.uid == pod_uid:
                if attempt.target.netns is not None:
                    netns.add(attempt.target.netns)
                self.forget(cid)
        forget = getattr(self._sockets, "forget", None)
        for path in netns:
            if forget is not None:
                forget(path)

    async def close(self) -> None:
        tasks = [t for a in self._attempts.values() for t in a.tasks]
        self._attempts.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._exchanges is not None:
            self._exchanges.close()
            self._exchanges = None

    # ------------------------------------------------------------ the worker

    async def _worker(self, attempt: _Attempt, kind: str, probe: types_pb2.Probe) -> None:
        target, state = attempt.target, attempt.states[kind]
        uid = target.pod.metadata.uid
        try:
            if probe.initial_delay_seconds > 0:
                await self.sleep(probe.initial_delay_seconds)
            period = max(1, probe.period_seconds)
            plan, planned_for = None, None
            while True:
                if kind == STARTUP or self.started(target.container_id):
                    if planned_for != target.pod_ip:   # the handler's arguments, made again only if the IP changes
                        plan, planned_for = self.plan(probe, target), target.pod_ip
                    outcome = await plan()
                    if not outcome.ok:
                        self._event(target.pod, "Warning", "Unhealthy", f"{kind} probe failed: {outcome.message}")
                    if state.observe(outcome.ok):
                        log.info("pod %s/%s container %s: %s probe %s", target.pod.metadata.namespace,
                                 target.pod.metadata.name, target.container.name, kind.lower(),
                                 "succeeded" if state.result else "failed")
                        if kind in (LIVENESS, STARTUP) and state.result is False:
                            grace = (probe.termination_grace_period_seconds
                                     if probe.HasField("termination_grace_period_seconds") else None)
                            attempt.kill = (kind, grace)
                        self.on_change(uid)
                    if attempt.kill is not None or (kind == STARTUP and state.result is True):
                        return   # on hold until the next attempt / startup done for good
                await self.sleep(period)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not take the pod worker down
            log.exception("%s probe of %s failed unexpectedly", kind, target.container_id)

    async def run(self, kind: str, probe: types_pb2.Probe, target: Target) -> checks.Outcome:
        """One probe run with its timeout."""
        return await self.plan(probe, target)()

    def plan(self, probe: types_pb2.Probe, target: Target) -> Callable[[], Awaitable[checks.Outcome]]:
        """The probe's handler with its arguments bound: a worker makes it once
        and calls it every period (issue 10, the probe CPU budget)."""
        timeout = float(max(1, probe.timeout_seconds))
        host = target.pod_ip or "127.0.0.1"
        netns = target.netns
        if probe.HasField("exec"):
            return functools.partial(checks.exec_probe, self.runtime, target.container_id, list(probe.exec.command),
                                     timeout=timeout)
        if probe.HasField("http_get"):
            g = probe.http_get
            port = _port(g.port, target.container)
            if port is None:
                return _fixed(checks.Outcome(False, f"unknown port {g.port!r}: no container port of that name"))
            return functools.partial(checks.http_get, self.sockets, netns, host=g.host or host, port=port,
                                     path=g.path, scheme=g.scheme,
                                     headers=tuple((h.name, h.value) for h in g.http_headers), timeout=timeout,
                                     exchanges=self.exchanges)
        if probe.HasField("tcp_socket"):
            port = _port(probe.tcp_socket.port, target.container)
            if port is None:
                return _fixed(checks.Outcome(False, f"unknown port {probe.tcp_socket.port!r}: no container port of "
                                                    f"that name"))
            return functools.partial(checks.tcp_socket, self.sockets, netns, host=probe.tcp_socket.host or host,
                                     port=port, timeout=timeout, exchanges=self.exchanges)
        if probe.HasField("grpc"):
            return functools.partial(checks.grpc_health, self.sockets, netns, host=host, port=probe.grpc.port,
                                     service=probe.grpc.service, timeout=timeout)
        return _fixed(checks.Outcome(False, "the probe has no handler"))

    def _event(self, pod: types_pb2.Pod, kind: str, reason: str, message: str) -> None:
        if self.events is not None:
            self.events(pod, kind, reason, message)


def _fixed(outcome: checks.Outcome) -> Callable[[], Awaitable[checks.Outcome]]:
    async def answer() -> checks.Outcome:
        return outcome
    return answer


def _port(value: str, container: types_pb2.Container) -> int | None:
    """A probe's IntOrString port: a number, or the name of one of the container's ports."""
    if value.isdigit():
        return int(value)
    for port in container.ports:
        if port.name == value:
            return port.container_port
    return None
