"""ReplicaSet (apps/v1): keeps spec.replicas pods matching its selector, made
from its template (controlplane/controllers/replicaset.py does the keeping).

Defaults: replicas 1 and the pod defaults in the template. Checks: a selector
that is not empty and matches the template's labels, replicas >= 0, a
template that is a valid pod with restartPolicy Always; the selector is
immutable. A user's status is ignored on create, as Kubernetes does.
"""
from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import apps_pb2
from skiff.api import describing, humanize, labelselector, workload
from skiff.api.kinds.strategy import DescribeContext, FieldGetter, Kind, Strategy, getter
from skiff.api.validation import FieldError


class ReplicaSetStrategy(Strategy):
    immutable_fields = ("spec.selector",)

    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        if not obj.spec.HasField("replicas"):
            obj.spec.replicas = 1
        workload.default_template(obj.spec.template)
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        return super().validate(obj) + workload.validate_selected_template(obj.spec, kind="ReplicaSet")

    def prepare_create(self, obj: Message) -> Message:
        super().prepare_create(obj)
        obj.ClearField("status")
        return obj

    @property
    def field_selectors(self) -> dict[str, FieldGetter]:
        return {**super().field_selectors, "status.replicas": getter("status", "replicas")}

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "DESIRED", "CURRENT", "READY", "AGE"] + (["CONTAINERS", "IMAGES", "SELECTOR"] if wide else [])

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        row = [obj.metadata.name, str(obj.spec.replicas), str(obj.status.replicas), str(obj.status.ready_replicas),
               humanize.age(obj.metadata.creation_timestamp, now=now)]
        return row + (workload.wide_columns(obj.spec.template, obj.spec.selector) if wide else [])

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        m, s = obj.metadata, obj.status
        text.multiline("Name", m.name, width=16)
        text.multiline("Namespace", m.namespace, width=16)
        text.multiline("Selector", labelselector.to_text(obj.spec.selector), width=16)
        text.multiline("Labels", describing.map_text(m.labels), width=16)
        text.multiline("Annotations", "\n".join(f"{k}: {v}" for k, v in sorted(m.annotations.items())) or "<none>",
                       width=16)
        controlled = [f"{ref.kind}/{ref.name}" for ref in m.owner_references if ref.controller]
        if controlled:
            text.multiline("Controlled By", controlled[0], width=16)
        text.multiline("Replicas", f"{s.replicas} current / {obj.spec.replicas} desired", width=16)
        text.multiline("Pods Status", f"{s.ready_replicas} Ready / {s.available_replicas} Available", width=16)
        workload.describe_template(text, obj.spec.template)
        workload.conditions_table(text, s.conditions)
        describing.events(text, ctx.events, now=ctx.now)
        return str(text)


KIND = Kind("ReplicaSet", "apps/v1", "replicasets", "replica_set", apps_pb2.ReplicaSet, True,
            ("replicaset", "rs"), strategy=ReplicaSetStrategy())
