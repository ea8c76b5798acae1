"""What the agent remembers of each pod it runs: a memo of the runtime's state.

A `PodRecord` holds, per container name, the current and previous attempt as
the runtime last reported them and why the next attempt has not started.
Nothing here is the truth: the pod workers refresh it from the runtime on
every reconcile and rebuild it from `runtime.list_containers()` after a
restart (agent.podworkers.recover). `container_views` turns a record into the
input of agent.status.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from agent.containers import PodPaths
from agent.runtime.interface import ContainerStatus, Sandbox, State
from agent.status import ContainerView
from proto.skiff.v1 import types_pb2

DEFAULT_GRACE_SECONDS = 30


@dataclass
class ContainerRecord:
    restart: int = 0                          # the current attempt's restart count
    current: ContainerStatus | None = None
    previous: ContainerStatus | None = None
    waiting: tuple[str, str] | None = None    # why the next attempt has not started
    spec_hash: str = ""                       # of the Container spec it was started from ("" adopted)


@dataclass
class PodRecord:
    uid: str
    namespace: str
    name: str
    paths: PodPaths
    sandbox: Sandbox | None = None
    pod_ip: str = ""
    # Why the pod's sandbox or network is not ready: (reason, message), e.g.
    # ("HostPortInUse", "host port 5000/TCP is already in use by ...").
    setup_error: tuple[str, str] | None = None
    mount_error: str = ""                     # why a configMap/secret/... volume cannot be set up yet
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    containers: dict[str, ContainerRecord] = field(default_factory=dict)
    init_containers: dict[str, ContainerRecord] = field(default_factory=dict)
    waiters: dict[str, asyncio.Task] = field(default_factory=dict)
    adopted: bool = False
    initialized: bool = False                 # every init container has run (sidecars started) once
    evicted: str | None = None                # the eviction's message, once the node evicts the pod
    released: bool = False                    # terminal: containers, network, sandbox freed


class ProbeResults(Protocol):
    """What the prober says of a container attempt (agent.prober.ProbeManager)."""
    def ready(self, container_id: str) -> bool: ...
    def started(self, container_id: str) -> bool: ...


def init_done(pod: types_pb2.Pod, rec: PodRecord) -> bool:
    """Every init container has run to completion (exit 0)."""
    if rec.initialized:
        return True
    for spec in pod.spec.init_containers:
        cr = rec.init_containers.get(spec.name)
        if spec.restart_policy == "Always":   # a sidecar: started is enough
            if cr is None or cr.current is None or cr.current.state is State.EXITED:
                return False
        elif cr is None or cr.current is None or cr.current.exit_code != 0 or cr.waiting is not None:
            return False
    return True


def container_views(pod: types_pb2.Pod, rec: PodRecord, *, init: bool = False,
                    probes: ProbeResults | None = None) -> list[ContainerView]:
    """Views of the app containers, or (init=True) of the init containers."""
    views = []
    specs, records = (pod.spec.init_containers, rec.init_containers) if init else (pod.spec.containers, rec.containers)
    initializing = not init and not init_done(pod, rec)
    for spec in specs:
        cr = records.get(spec.name) or ContainerRecord()
        waiting = cr.waiting
        if waiting is None and cr.current is None:
            waiting = ("PodInitializing", "") if initializing else (
                "ContainerCreating", rec.setup_error[1] if rec.setup_error else "")
        cid = cr.current.id if cr.current is not None else ""
        views.append(ContainerView(name=spec.name, image=spec.image, restart_count=cr.restart,
                                   current=cr.current, previous=cr.previous, waiting=waiting,
                                   ready=probes.ready(cid) if probes and cid else True,
                                   started=probes.started(cid) if probes and cid else True,
                                   sidecar=init and spec.restart_policy == "Always"))
    return views
