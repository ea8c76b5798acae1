"""Namespace (v1, cluster-scoped): the scope of namespaced objects.

As Kubernetes: a new namespace is Active with spec.finalizers ["kubernetes"]
and the label kubernetes.io/metadata.name; deleting it only marks it
(deletionTimestamp, phase Terminating), and it goes once the namespace
controller (controlplane/controllers/namespace.py) has deleted everything in
it and removed its finalizer. The registry refuses new objects in a namespace
that is missing or terminating (NamespaceLifecycle).
"""
from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import types_pb2
from skiff.api import describing, humanize, meta
from skiff.api.kinds.strategy import DescribeContext, FieldGetter, Kind, Strategy, getter
from skiff.api.validation import FieldError, dns1123_label_error

FINALIZER = "kubernetes"            # the namespace controller's: "everything in it is deleted"
NAME_LABEL = "kubernetes.io/metadata.name"
ACTIVE, TERMINATING = "Active", "Terminating"
UNDELETABLE = ("default", "kube-system", "kube-public")   # as Kubernetes' NamespaceLifecycle


class NamespaceStrategy(Strategy):
    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        if obj.metadata.name and dns1123_label_error(obj.metadata.name) is None:
            obj.metadata.labels[NAME_LABEL] = obj.metadata.name  # (a bad name is reported once, as itself)
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        errors = super().validate(obj)
        if obj.metadata.name and (problem := dns1123_label_error(obj.metadata.name)):
            errors.append(FieldError("metadata.name", problem))
        return errors

    def prepare_create(self, obj: Message) -> Message:
        super().prepare_create(obj)
        obj.ClearField("status")
        obj.status.phase = ACTIVE
        if FINALIZER not in obj.spec.finalizers:
            obj.spec.finalizers.append(FINALIZER)
        return obj

    def prepare_update(self, old: Message, new: Message) -> Message:
        if not old.metadata.HasField("deletion_timestamp"):
            # spec.finalizers are the server's; only the termination (Kubernetes' /finalize) clears them.
            new = meta.copy(new)
            new.spec.finalizers[:] = old.spec.finalizers
        return super().prepare_update(old, new)

    def prepare_apply(self, old: Message, new: Message) -> Message:
        new = meta.copy(new)
        new.spec.finalizers[:] = old.spec.finalizers
        return super().prepare_apply(old, new)

    def delete_refused(self, obj: Message) -> str | None:
        if obj.metadata.name in UNDELETABLE:
            return f'namespaces "{obj.metadata.name}" is forbidden: this namespace may not be deleted'
        return None

    def on_delete(self, obj: Message, grace_seconds: int | None) -> Message | None:
        if not obj.spec.finalizers:
            return None
        if obj.metadata.HasField("deletion_timestamp"):
            return obj
        marked = meta.copy(obj)
        marked.metadata.deletion_timestamp.CopyFrom(meta.timestamp())
        marked.metadata.deletion_grace_period_seconds = 0
        marked.status.phase = TERMINATING
        return marked

    def finalizers(self, obj: Message) -> list[str]:
        return [*obj.metadata.finalizers, *obj.spec.finalizers]

    @property
    def field_selectors(self) -> dict[str, FieldGetter]:
        return {**super().field_selectors, "status.phase": getter("status", "phase")}

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "STATUS", "AGE"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        return [obj.metadata.name, obj.status.phase or ACTIVE, humanize.age(obj.metadata.creation_timestamp, now=now)]

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        describing.header(text, obj)
        text.multiline("Status", obj.status.phase or ACTIVE)
        describing.events(text, ctx.events, now=ctx.now)
        return str(text)


KIND = Kind("Namespace", "v1", "namespaces", "namespace", types_pb2.Namespace, False, ("namespace", "ns"),
            strategy=NamespaceStrategy())
