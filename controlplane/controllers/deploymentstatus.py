"""A Deployment's status, pure (Kubernetes' `sync.go` calculateStatus and
`progress.go`): the counts summed over its ReplicaSets, the Available condition
(at least replicas - maxUnavailable available), Progressing (progress seen,
complete, paused, or ProgressDeadlineExceeded once no progress was seen for
progressDeadlineSeconds), ReplicaFailure copied from a ReplicaSet that could
not create pods, and when to look again for a deadline.
"""
from __future__ import annotations

from typing import Sequence

from controlplane.controllers import rollingupdate as ru
from proto.skiff.v1 import apps_pb2
from skiff.api import meta


def strategy_of(d: apps_pb2.Deployment) -> ru.Strategy:
    r = d.spec.strategy.rolling_update
    return ru.Strategy(replicas=d.spec.replicas, rolling=d.spec.strategy.type != "Recreate",
                       max_surge=r.max_surge, max_unavailable=r.max_unavailable)


# Condition reasons, as Kubernetes' (kubectl rollout status reads them).
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

def set_condition(conditions, *, type_: str, status: str, reason: str, message: str, now: float,
                  keep_transition: bool = False) -> None:
    """Kubernetes' SetDeploymentCondition: the same status and reason is no
    change; otherwise replaced, lastTransitionTime kept while the status stays."""
    current = meta.get_condition(conditions, type_)
    if current is not None and current.status == status and current.reason == reason and not keep_transition:
        return
    cond = apps_pb2.DeploymentCondition(type=type_, status=status, reason=reason, message=message)
    cond.last_update_time.CopyFrom(meta.timestamp(now))
    if current is not None and current.status == status:
        cond.last_transition_time.CopyFrom(current.last_transition_time)
    else:
        cond.last_transition_time.CopyFrom(meta.timestamp(now))
    meta.remove_condition(conditions, type_)
    conditions.append(cond)


def calculate_status(d: apps_pb2.Deployment, all_rs: Sequence[apps_pb2.ReplicaSet],
                     new: apps_pb2.ReplicaSet | None, now: float) -> apps_pb2.DeploymentStatus:
    available = sum(rs.status.available_replicas for rs in all_rs)
    total = sum(rs.spec.replicas for rs in all_rs)
    status = apps_pb2.DeploymentStatus()
    status.conditions.extend(d.status.conditions)
    if d.status.HasField("collision_count"):
        status.collision_count = d.status.collision_count
    status.observed_generation = d.metadata.generation
    status.replicas = sum(rs.status.replicas for rs in all_rs)
    status.updated_replicas = new.status.replicas if new is not None else 0
    status.ready_replicas = sum(rs.status.ready_replicas for rs in all_rs)
    status.available_replicas = available
    status.unavailable_replicas = max(0, total - available)
    if available >= d.spec.replicas - ru.max_unavailable(strategy_of(d)):
        set_condition(status.conditions, type_="Available", status="True", reason=MIN_AVAILABLE,
                      message="Deployment has minimum availability.", now=now)
    else:
        set_condition(status.conditions, type_="Available", status="False", reason=MIN_UNAVAILABLE,
                      message="Deployment does not have minimum availability.", now=now)
    return status


def is_complete(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus) -> bool:
    n = d.spec.replicas
    return (status.updated_replicas == n and status.replicas == n and status.available_replicas == n
            and status.observed_generation >= d.metadata.generation)


def is_progressing(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus) -> bool:
    old = d.status
    return (status.updated_replicas > old.updated_replicas
            or status.replicas - status.updated_replicas < old.replicas - old.updated_replicas
            or status.ready_replicas > old.ready_replicas
            or status.available_replicas > old.available_replicas)


def has_deadline(d: apps_pb2.Deployment) -> bool:
    return d.spec.HasField("progress_deadline_seconds") and d.spec.progress_deadline_seconds > 0


def timed_out(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus, now: float) -> bool:
    if not has_deadline(d):
        return False
    cond = meta.get_condition(status.conditions, "Progressing")
    if cond is None or cond.reason == NEW_RS_AVAILABLE:
        return False
    if cond.reason == TIMED_OUT:
        return True
    return meta.seconds(cond.last_update_time) + d.spec.progress_deadline_seconds < now


def rollout_status(d: apps_pb2.Deployment, all_rs: Sequence[apps_pb2.ReplicaSet], new: apps_pb2.ReplicaSet | None,
                   now: float) -> apps_pb2.DeploymentStatus:
    """The status with the Progressing and ReplicaFailure conditions (syncRolloutStatus)."""
    status = calculate_status(d, all_rs, new, now)
    if not has_deadline(d):
        meta.remove_condition(status.conditions, "Progressing")
    current = meta.get_condition(status.conditions, "Progressing")
    done = (status.replicas == status.updated_replicas and current is not None
            and current.reason == NEW_RS_AVAILABLE)
    if has_deadline(d) and not done:
        if is_complete(d, status):
            set_condition(status.conditions, type_="Progressing", status="True", reason=NEW_RS_AVAILABLE,
                          message=f'ReplicaSet "{new.metadata.name}" has successfully progressed.' if new else
                          f'Deployment "{d.metadata.name}" has successfully progressed.', now=now)
        elif is_progressing(d, status):
            what = f'ReplicaSet "{new.metadata.name}"' if new is not None else f'Deployment "{d.metadata.name}"'
            set_condition(status.conditions, type_="Progressing", status="True", reason=RS_UPDATED,
                          message=f"{what} is progressing.", now=now, keep_transition=True)
        elif timed_out(d, status, now):
            what = f'ReplicaSet "{new.metadata.name}"' if new is not None else f'Deployment "{d.metadata.name}"'
            set_condition(status.conditions, type_="Progressing", status="False", reason=TIMED_OUT,
                          message=f"{what} has timed out progressing.", now=now)
    failures = [c for rs in all_rs for c in rs.status.conditions if c.type == "ReplicaFailure" and c.status == "True"]
    if failures:
        f = failures[0]
        set_condition(status.conditions, type_="ReplicaFailure", status=f.status, reason=f.reason,
                      message=f.message, now=now)
    else:
        meta.remove_condition(status.conditions, "ReplicaFailure")
    return status


def recheck_after(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus, now: float) -> float | None:
    """When to look again so a stuck rollout is marked timed out (requeueStuckDeployment)."""
    cond = meta.get_condition(status.conditions, "Progressing")
    if not has_deadline(d) or cond is None or cond.reason in (TIMED_OUT, PAUSED, RESUMED) \
            or is_complete(d, status) or d.spec.paused:
        return None
    return max(0.1, meta.seconds(cond.last_update_time) + d.spec.progress_deadline_seconds - now + 0.1)
