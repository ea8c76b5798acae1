"""What the API server does to objects on their way into the store:
defaulting, the rules on what an update may change, and the pod operations
(bind, graceful delete) expressed as pure functions over messages so they are
testable without a server."""
from __future__ import annotations

import time
import uuid

from google.protobuf.message import Message

from proto.skiff.v1 import types_pb2
from skiff.api import kinds, meta

DEFAULT_NAMESPACE = "default"
DEFAULT_GRACE_SECONDS = 30
DEFAULT_SCHEDULER = "default-scheduler"


class Forbidden(ValueError):
    """An update that changes what may not change; `.field_path` names it."""

    def __init__(self, message: str, *, field_path: str) -> None:
        super().__init__(message)
        self.field_path = field_path


def apply_defaults(obj: Message) -> Message:
    """Fill what the user may leave out (in place; returns obj)."""
    kind = kinds.kind_of(obj)
    obj.kind, obj.api_version = kind.name, kind.api_version
    if kind.namespaced:
        obj.metadata.namespace = obj.metadata.namespace or DEFAULT_NAMESPACE
    else:
        obj.metadata.namespace = ""
    if not obj.metadata.name and obj.metadata.generate_name:
        obj.metadata.name = obj.metadata.generate_name + uuid.uuid4().hex[:5]
    if isinstance(obj, types_pb2.Pod):
        spec = obj.spec
        spec.restart_policy = spec.restart_policy or "Always"
        spec.scheduler_name = spec.scheduler_name or DEFAULT_SCHEDULER
        if not spec.HasField("termination_grace_period_seconds"):
            spec.termination_grace_period_seconds = DEFAULT_GRACE_SECONDS
        for container in list(spec.init_containers) + list(spec.containers):
            for port in container.ports:
                port.protocol = port.protocol or "TCP"
    return obj


def prepare_create(obj: Message) -> Message:
    """A new object's server-owned metadata (in place; returns obj)."""
    m = obj.metadata
    m.uid = str(uuid.uuid4())
    m.resource_version = ""
    m.generation = 1
    m.creation_timestamp.CopyFrom(meta.timestamp())
    m.ClearField("deletion_timestamp")
    m.deletion_grace_period_seconds = 0
    if isinstance(obj, types_pb2.Pod):
        # As in Kubernetes, a new pod's status is the server's, not the user's
        # (nodes keep theirs: an agent registers with its capacity).
        obj.ClearField("status")
        obj.status.phase = "Pending"
    return obj


def _has_status(obj: Message) -> bool:
    return "status" in type(obj).DESCRIPTOR.fields_by_name


def _mutable_pod_spec_view(spec: types_pb2.PodSpec) -> types_pb2.PodSpec:
    """The spec with the fields Kubernetes lets an update change blanked out."""
    view = types_pb2.PodSpec()
    view.CopyFrom(spec)
    for container in list(view.containers) + list(view.init_containers):
        container.image = ""
    view.ClearField("termination_grace_period_seconds")
    view.node_name = ""  # set by Bind, checked separately
    return view


def merge_update(existing: Message, incoming: Message, *, keep_node_name: bool) -> Message:
    """The object to store when `incoming` replaces `existing` through
    Apply/Update: server-owned metadata and the status are kept; the pod
    spec may change only where Kubernetes allows. Raises Forbidden."""
    result = meta.copy(incoming)
    m, old = result.metadata, existing.metadata
    m.uid, m.generation = old.uid, old.generation
    m.creation_timestamp.CopyFrom(old.creation_timestamp)
    if old.HasField("deletion_timestamp"):
        m.deletion_timestamp.CopyFrom(old.deletion_timestamp)
        m.deletion_grace_period_seconds = old.deletion_grace_period_seconds
    else:
        m.ClearField("deletion_timestamp")
        m.deletion_grace_period_seconds = 0
    if _has_status(existing):
        result.status.CopyFrom(existing.status)
    if isinstance(existing, types_pb2.Pod):
        if keep_node_name and not result.spec.node_name:
            result.spec.node_name = existing.spec.node_name
        if result.spec.node_name != existing.spec.node_name and existing.spec.node_name:
            raise Forbidden(f'Pod "{m.name}" is invalid: spec.nodeName: Forbidden: a bound pod cannot be moved '
                            f'(bound to {existing.spec.node_name!r})', field_path="spec.nodeName")
        if _mutable_pod_spec_view(result.spec) != _mutable_pod_spec_view(existing.spec):
            raise Forbidden(f'Pod "{m.name}" is invalid: spec: Forbidden: pod updates may not change fields '
                            f'other than spec.containers[*].image, spec.initContainers[*].image and '
                            f'spec.terminationGracePeriodSeconds; delete the pod and create it again',
                            field_path="spec")
    if isinstance(existing, types_pb2.Node) and existing.spec.pod_cidr and not result.spec.pod_cidr:
        # An agent re-registering its node does not know the CIDR it was given; it stays.
        result.spec.pod_cidr = existing.spec.pod_cidr
        result.spec.pod_cidrs[:] = existing.spec.pod_cidrs
    if "spec" in type(existing).DESCRIPTOR.fields_by_name and result.spec != existing.spec:
        m.generation = old.generation + 1
    return result


def same_content(a: Message, b: Message) -> bool:
    """Whether an Apply would change nothing the user controls."""
    fields = [f for f in ("spec",) if f in type(a).DESCRIPTOR.fields_by_name]
    if not _has_status(a) and "spec" not in type(a).DESCRIPTOR.fields_by_name:
        x, y = meta.copy(a), meta.copy(b)
        x.ClearField("metadata"), y.ClearField("metadata")
        if x != y:
            return False
    return (dict(a.metadata.labels) == dict(b.metadata.labels)
            and dict(a.metadata.annotations) == dict(b.metadata.annotations)
            and all(getattr(a, f) == getattr(b, f) for f in fields))


def with_status(existing: Message, incoming: Message) -> Message:
    """UpdateStatus: the stored object with only its status replaced."""
    result = meta.copy(existing)
    result.status.CopyFrom(incoming.status)
    return result


def bind(pod: types_pb2.Pod, node_name: str) -> types_pb2.Pod:
    """The pod bound to `node_name`, with condition PodScheduled=True."""
    if pod.spec.node_name:
        raise Forbidden(f'pod "{pod.metadata.name}" is already assigned to node "{pod.spec.node_name}"',
                        field_path="spec.nodeName")
    if pod.metadata.HasField("deletion_timestamp"):
        raise Forbidden(f'pod "{pod.metadata.name}" is being deleted; cannot bind it', field_path="metadata")
    bound = meta.copy(pod)
    bound.spec.node_name = node_name
    meta.set_condition(bound.status.conditions, type_="PodScheduled", status="True")
    return bound


def mark_for_deletion(pod: types_pb2.Pod, grace_seconds: int | None) -> types_pb2.Pod | None:
    """A bound pod being deleted gracefully: deletionTimestamp + grace period,
    for its agent to stop the containers and then remove it. None when the
    mark is already there and would not get shorter."""
    grace = grace_seconds if grace_seconds is not None else (
        pod.spec.termination_grace_period_seconds if pod.spec.HasField("termination_grace_period_seconds")
        else DEFAULT_GRACE_SECONDS)
    if pod.metadata.HasField("deletion_timestamp") and pod.metadata.deletion_grace_period_seconds <= grace:
        return None
    marked = meta.copy(pod)
    # As Kubernetes: the timestamp is when the grace period ends.
    marked.metadata.deletion_timestamp.CopyFrom(meta.timestamp(time.time() + grace))
    marked.metadata.deletion_grace_period_seconds = grace
    return marked
