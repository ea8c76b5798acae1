"""Pod status from what the agent knows of its containers, as kubelet computes it.

Pure functions: the pod worker gathers a `ContainerView` per container (the
runtime's status of the current and previous attempt, or why it is waiting)
and `pod_status` turns them into the PodStatus the API shows — per-container
waiting/running/terminated states, restartCount, lastState, the pod's phase
(kubelet's getPhase), conditions and timestamps. Transition times and
startTime are carried over from the previous status so that an unchanged
situation yields an identical message and no write.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from agent.runtime.interface import ContainerStatus, State
from proto.skiff.v1 import types_pb2
from skiff.api.quantity import QuantityError, parse_quantity

TERMINAL_PHASES = ("Succeeded", "Failed")
RUNTIME_PREFIX = "skiff://"


@dataclass(frozen=True)
class ContainerView:
    name: str
    image: str
    restart_count: int = 0
    current: ContainerStatus | None = None    # the runtime's status of the latest attempt
    previous: ContainerStatus | None = None   # the attempt before it, for lastState
    waiting: tuple[str, str] | None = None    # (reason, message) when not running
    ready: bool = True      # the readiness probe's result (True without one)
    sidecar: bool = False   # an init container with restartPolicy Always
    started: bool = True    # the startup probe's result (True without one)


@dataclass(frozen=True)
class PodCondition:
    type: str
    status: bool
    reason: str = ""
    message: str = ""


def timestamp(dt: datetime | None) -> Timestamp | None:
    if dt is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def terminated(st: ContainerStatus) -> types_pb2.ContainerStateTerminated:
    t = types_pb2.ContainerStateTerminated(
        exit_code=st.exit_code if st.exit_code is not None else 0, signal=st.signal or 0,
        reason=_terminated_reason(st), message=st.message, container_id=RUNTIME_PREFIX + st.id)
    if st.started_at:
        t.started_at.CopyFrom(timestamp(st.started_at))
    if st.finished_at:
        t.finished_at.CopyFrom(timestamp(st.finished_at))
    return t


def _terminated_reason(st: ContainerStatus) -> str:
    if st.oom_killed:
        return "OOMKilled"
    if st.reason:
        return st.reason
    return "Completed" if st.exit_code == 0 else "Error"


def container_status(view: ContainerView) -> types_pb2.ContainerStatus:
    cs = types_pb2.ContainerStatus(name=view.name, image=view.image, restart_count=view.restart_count)
    cur = view.current
    if view.waiting is not None:
        cs.state.waiting.reason, cs.state.waiting.message = view.waiting
        if cur is not None and cur.state is State.EXITED:
            cs.last_state.terminated.CopyFrom(terminated(cur))
    elif cur is not None and cur.state is State.RUNNING:
        cs.state.running.started_at.CopyFrom(timestamp(cur.started_at) or Timestamp())
        cs.started = view.started
        cs.ready = view.started and view.ready
    elif cur is not None and cur.state is State.EXITED:
        cs.state.terminated.CopyFrom(terminated(cur))
    else:
        cs.state.waiting.reason = "ContainerCreating"
    if cur is not None:
        cs.container_id = RUNTIME_PREFIX + cur.id
        cs.image_id = cur.image_id
    if view.previous is not None and view.previous.state is State.EXITED and not cs.last_state.HasField("terminated"):
        cs.last_state.terminated.CopyFrom(terminated(view.previous))
    return cs


def pod_phase(restart_policy: str, statuses: list[types_pb2.ContainerStatus]) -> str:
    """kubelet's getPhase for pods without init containers."""
    waiting = running = stopped = succeeded = 0
    for cs in statuses:
        if cs.state.HasField("running"):
            running += 1
        elif cs.state.HasField("terminated"):
            stopped += 1
            succeeded += cs.state.terminated.exit_code == 0
        elif cs.last_state.HasField("terminated"):
            stopped += 1  # waiting to be restarted
        else:
            waiting += 1
    policy = restart_policy or "Always"
    if not statuses or waiting:
        return "Pending"
    if running:
        return "Running"
    if policy == "Always":
        return "Running"  # every container will be restarted
    if stopped == succeeded:
        return "Succeeded"
    if policy == "Never":
        return "Failed"
    return "Running"  # OnFailure: the failed ones will be restarted


def pod_status(*, pod: types_pb2.Pod, views: list[ContainerView], host_ip: str, pod_ip: str,
               now: datetime, extra_conditions: tuple[PodCondition, ...] = (),
               init_views: list[ContainerView] = ()) -> types_pb2.PodStatus:
    old = pod.status
    status = types_pb2.PodStatus(host_ip=host_ip, pod_ip=pod_ip, qos_class=old.qos_class or qos_class(pod))
    if pod_ip:
        status.pod_ips.add(ip=pod_ip)
    status.start_time.CopyFrom(old.start_time if old.HasField("start_time") else timestamp(now))
    for view in views:
        status.container_statuses.append(container_status(view))
    done = []   # per init container: completed (exit 0), or for a sidecar: started
    for view in init_views:
        cs = container_status(view)
        if view.sidecar:
            done.append(cs.state.HasField("running") and cs.started)
        else:
            cs.ready = cs.state.HasField("terminated") and cs.state.terminated.exit_code == 0
            done.append(cs.ready)
        status.init_container_statuses.append(cs)
    initialized = all(done)
    status.phase = pod_phase(pod.spec.restart_policy, list(status.container_statuses))
    if not initialized:
        failed_for_good = (pod.spec.restart_policy == "Never" and any(
            cs.state.HasField("terminated") and cs.state.terminated.exit_code != 0
            for cs, view in zip(status.init_container_statuses, init_views) if not view.sidecar))
        status.phase = "Failed" if failed_for_good else "Pending"
    all_ready = bool(views) and all(cs.ready for cs in status.container_statuses)
    terminal = status.phase in TERMINAL_PHASES
    not_ready = [cs.name for cs in status.container_statuses if not cs.ready]
    ready_reason = "PodCompleted" if terminal else ("" if all_ready else "ContainersNotReady")
    ready_message = "" if all_ready or terminal else f"containers with unready status: [{' '.join(not_ready)}]"
    pending_init = [cs.name for cs, ok in zip(status.init_container_statuses, done) if not ok]
    conditions = [
        PodCondition("Initialized", initialized,
                     "PodCompleted" if terminal and initialized else ("" if initialized else "ContainersNotInitialized"),
                     "" if initialized else f"containers with incomplete status: [{' '.join(pending_init)}]"),
        PodCondition("Ready", all_ready, ready_reason, ready_message),
        PodCondition("ContainersReady", all_ready, ready_reason, ready_message),
        PodCondition("PodScheduled", True),
        *extra_conditions,
    ]
    previous = {c.type: c for c in old.conditions}
    for cond in conditions:
        value = "True" if cond.status else "False"
        pc = types_pb2.PodCondition(type=cond.type, status=value, reason=cond.reason, message=cond.message)
        before = previous.get(cond.type)
        if before is not None and before.status == value and before.HasField("last_transition_time"):
            pc.last_transition_time.CopyFrom(before.last_transition_time)
        else:
            pc.last_transition_time.CopyFrom(timestamp(now))
        status.conditions.append(pc)
    return status


def qos_class(pod: types_pb2.Pod) -> str:
    """Kubernetes' QoS class (pkg/apis/core/helper/qos): over the app and init
    containers' cpu and memory only, BestEffort when none requests or limits
    either, Guaranteed when every container limits both and requests what it
    limits (a missing request is the limit), else Burstable."""
    containers = list(pod.spec.containers) + list(pod.spec.init_containers)
    compute = ("cpu", "memory")
    if not any(r in c.resources.limits or r in c.resources.requests for c in containers for r in compute):
        return "BestEffort"
    for c in containers:
        limits, requests = c.resources.limits, c.resources.requests
        for resource in compute:
            if resource not in limits:
                return "Burstable"
            if resource in requests and _quantity(requests[resource]) != _quantity(limits[resource]):
                return "Burstable"
    return "Guaranteed"


def _quantity(text: str):
    try:
        return parse_quantity(text)
    except QuantityError:
        return text


GUARANTEED_OOM_SCORE_ADJ = -997
BEST_EFFORT_OOM_SCORE_ADJ = 1000


def oom_score_adj(pod: types_pb2.Pod, container: types_pb2.Container, *, memory_capacity: int) -> int:
    """kubelet's GetContainerOOMScoreAdjust: -997 Guaranteed, 1000 BestEffort; Burstable
    1000 - 1000 * request / capacity, kept within 3..999 so it sits between the two."""
    qos = qos_class(pod)
    if qos == "Guaranteed":
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == "BestEffort":
        return BEST_EFFORT_OOM_SCORE_ADJ
    request = container.resources.requests.get("memory") or container.resources.limits.get("memory")
    try:
        memory = int(parse_quantity(request)) if request else 0
    except QuantityError:
        memory = 0
    adjust = 1000 - (1000 * memory) // max(memory_capacity, 1)
    if adjust < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if adjust == BEST_EFFORT_OOM_SCORE_ADJ:
        return adjust - 1
    return adjust


def same_status(a: types_pb2.PodStatus, b: types_pb2.PodStatus) -> bool:
    return a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)
