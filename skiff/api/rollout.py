"""A Deployment's revisions, shared by its controller and the `skiff rollout`
commands: the pod-template-hash that names a template, the revision
annotation that numbers it, and the choice of a revision to roll back to.

Kubernetes keeps one ReplicaSet per template a Deployment has had; the
ReplicaSet's name and its pods' `pod-template-hash` label carry the template's
hash, and `deployment.kubernetes.io/revision` says when it was last the
Deployment's template (the highest is the current one). Rolling back copies an
older ReplicaSet's template into the Deployment; the controller then finds
that ReplicaSet again (same template, ignoring the hash label) and gives it the
next revision.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from google.protobuf.message import Message

from proto.skiff.v1 import apps_pb2

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# What kubectl's SafeEncodeString uses: no vowels (no words), no look-alikes (0/1/3).
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193


def _fnv32a(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def template_without_hash(template: apps_pb2.PodTemplateSpec) -> apps_pb2.PodTemplateSpec:
    out = apps_pb2.PodTemplateSpec()
    out.CopyFrom(template)
    out.metadata.labels.pop(POD_TEMPLATE_HASH, None)
    return out


def pod_template_hash(template: apps_pb2.PodTemplateSpec, collision_count: int = 0) -> str:
    """A short stable name for `template` (its pod-template-hash label ignored).
    `collision_count` (status.collisionCount) changes it when a ReplicaSet of
    that name exists with another template, as Kubernetes' ComputeHash."""
    data = template_without_hash(template).SerializeToString(deterministic=True)
    if collision_count:
        data += collision_count.to_bytes(4, "little")
    return "".join(_ALPHABET[int(d) % len(_ALPHABET)] for d in str(_fnv32a(data)))


def equal_ignore_hash(a: apps_pb2.PodTemplateSpec, b: apps_pb2.PodTemplateSpec) -> bool:
    return template_without_hash(a) == template_without_hash(b)


def revision_of(rs: apps_pb2.ReplicaSet) -> int:
    """The ReplicaSet's revision; 0 when it has none (or not a number)."""
    try:
        return int(rs.metadata.annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def owned_by(deployment: apps_pb2.Deployment, replica_sets: Iterable[apps_pb2.ReplicaSet]) -> list[apps_pb2.ReplicaSet]:
    """The ReplicaSets `deployment` controls (its uid in their controller ownerReference)."""
    return [rs for rs in replica_sets
            if any(ref.controller and ref.uid == deployment.metadata.uid for ref in rs.metadata.owner_references)]


def history(replica_sets: Sequence[apps_pb2.ReplicaSet]) -> list[tuple[int, apps_pb2.ReplicaSet]]:
    """(revision, ReplicaSet) of a Deployment's ReplicaSets, oldest revision first."""
    return sorted(((revision_of(rs), rs) for rs in replica_sets if revision_of(rs) > 0), key=lambda p: p[0])


class RollbackError(ValueError):
    """The rollback cannot be done; the message is kubectl's."""


def rollback_target(deployment: apps_pb2.Deployment, replica_sets: Sequence[apps_pb2.ReplicaSet],
                    to_revision: int = 0) -> tuple[int, apps_pb2.ReplicaSet]:
    """The revision `rollout undo [--to-revision N]` goes back to and its
    ReplicaSet: N, or the revision before the current one when N is 0."""
    revisions = history(replica_sets)
    if to_revision:
        for revision, rs in revisions:
            if revision == to_revision:
                return revision, rs
        raise RollbackError(f"unable to find specified revision {to_revision} in history")
    if len(revisions) < 2:
        raise RollbackError(f'no rollout history found for deployment "{deployment.metadata.name}"'
                            if not revisions else "no last revision to roll back to")
    return revisions[-2]


def rolled_back_template(rs: apps_pb2.ReplicaSet) -> apps_pb2.PodTemplateSpec:
    """The template a rollback writes into the Deployment: the ReplicaSet's,
    without the hash label the controller added."""
    return template_without_hash(rs.spec.template)


def status_message(deployment: apps_pb2.Deployment) -> tuple[str, bool]:
    """What `rollout status` says about the Deployment now, and whether the
    rollout is done (kubectl's DeploymentStatusViewer). Raises RolloutError
    once the Deployment's progress deadline is exceeded."""
    d, s = deployment, deployment.status
    name = d.metadata.name
    if d.metadata.generation > s.observed_generation:
        return "Waiting for deployment spec update to be observed...", False
    for cond in s.conditions:
        if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
            raise RolloutError(f'deployment "{name}" exceeded its progress deadline')
    replicas = d.spec.replicas
    if s.updated_replicas < replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: {s.updated_replicas} out of {replicas} '
                f"new replicas have been updated..."), False
    if s.replicas > s.updated_replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: {s.replicas - s.updated_replicas} old '
                f"replicas are pending termination..."), False
    if s.available_replicas < s.updated_replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: {s.available_replicas} of '
                f"{s.updated_replicas} updated replicas are available..."), False
    return f'deployment "{name}" successfully rolled out', True


class RolloutError(RuntimeError):
    """The rollout failed (kubectl's wording)."""


def daemonset_status_message(ds: Message) -> tuple[str, bool]:
    """`rollout status` for a DaemonSet (kubectl's DaemonSetStatusViewer)."""
    name, s = ds.metadata.name, ds.status
    if ds.spec.update_strategy.type != "RollingUpdate":
        raise RolloutError("rollout status is only available for RollingUpdate strategy type")
    if ds.metadata.generation > s.observed_generation:
        return "Waiting for daemon set spec update to be observed...", False
    if s.updated_number_scheduled < s.desired_number_scheduled:
        return (f'Waiting for daemon set "{name}" rollout to finish: {s.updated_number_scheduled} out of '
                f"{s.desired_number_scheduled} new pods have been updated..."), False
    if s.number_available < s.desired_number_scheduled:
        return (f'Waiting for daemon set "{name}" rollout to finish: {s.number_available} of '
                f"{s.desired_number_scheduled} updated pods are available..."), False
    return f'daemon set "{name}" successfully rolled out', True


STATUS_VIEWERS = {"Deployment": status_message, "DaemonSet": daemonset_status_message}
