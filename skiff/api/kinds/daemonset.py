"""DaemonSet (apps/v1): one pod of the template on every eligible node
(controlplane/controllers/daemonset.py places them).

Defaults as Kubernetes': updateStrategy RollingUpdate with maxUnavailable 1,
revisionHistoryLimit 10, the pod defaults in the template. Checks: the
selector (not empty, matches the template's labels, immutable), a valid
template with restartPolicy Always, maxUnavailable an integer or percentage.
"""
from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import apps_pb2
from skiff.api import describing, humanize, intstr, labelselector, workload
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy
from skiff.api.validation import FieldError

STRATEGIES = ("RollingUpdate", "OnDelete")


class DaemonSetStrategy(Strategy):
    immutable_fields = ("spec.selector",)

    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        spec = obj.spec
        spec.update_strategy.type = spec.update_strategy.type or "RollingUpdate"
        if spec.update_strategy.type == "RollingUpdate":
            rolling = spec.update_strategy.rolling_update
            rolling.max_unavailable = rolling.max_unavailable or "1"
            rolling.max_surge = rolling.max_surge or "0"
        if not spec.HasField("revision_history_limit"):
            spec.revision_history_limit = 10
        workload.default_template(spec.template)
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        spec = obj.spec
        errors = super().validate(obj) + workload.validate_selected_template(spec, kind="daemonset")
        strategy = spec.update_strategy
        if strategy.type and strategy.type not in STRATEGIES:
            errors.append(FieldError("spec.updateStrategy.type", f'Unsupported value: "{strategy.type}": '
                                                                 f'supported values: "OnDelete", "RollingUpdate"'))
        for field, value in (("maxUnavailable", strategy.rolling_update.max_unavailable),
                             ("maxSurge", strategy.rolling_update.max_surge)):
            if value and (problem := intstr.check(value)):
                errors.append(FieldError(f"spec.updateStrategy.rollingUpdate.{field}", f"Invalid value: {problem}"))
        return errors

    def prepare_create(self, obj: Message) -> Message:
        super().prepare_create(obj)
        obj.ClearField("status")
        return obj

    def columns(self, *, wide: bool) -> list[str]:
        return (["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"]
                + (["CONTAINERS", "IMAGES", "SELECTOR"] if wide else []))

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        s = obj.status
        selector = ",".join(f"{k}={v}" for k, v in sorted(obj.spec.template.spec.node_selector.items())) or "<none>"
        row = [obj.metadata.name, str(s.desired_number_scheduled), str(s.current_number_scheduled),
               str(s.number_ready), str(s.updated_number_scheduled), str(s.number_available), selector,
               humanize.age(obj.metadata.creation_timestamp, now=now)]
        return row + (workload.wide_columns(obj.spec.template, obj.spec.selector) if wide else [])

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        m, s = obj.metadata, obj.status
        w = 32
        text.multiline("Name", m.name, width=w)
        text.multiline("Selector", labelselector.to_text(obj.spec.selector), width=w)
        text.multiline("Node-Selector", ",".join(f"{k}={v}" for k, v in
                                                 sorted(obj.spec.template.spec.node_selector.items())) or "<none>",
                       width=w)
        text.multiline("Labels", describing.map_text(m.labels), width=w)
        text.multiline("Annotations", describing.map_text(m.annotations), width=w)
        text.multiline("Desired Number of Nodes Scheduled", str(s.desired_number_scheduled), width=w + 3)
        text.multiline("Current Number of Nodes Scheduled", str(s.current_number_scheduled), width=w + 3)
        text.multiline("Number of Nodes Scheduled with Up-to-date Pods", str(s.updated_number_scheduled),
                       width=w + 16)
        text.multiline("Number of Nodes Scheduled with Available Pods", str(s.number_available), width=w + 15)
        text.multiline("Number of Nodes Misscheduled", str(s.number_misscheduled), width=w)
        workload.describe_template(text, obj.spec.template)
        describing.events(text, ctx.events, now=ctx.now)
        return str(text)


KIND = Kind("DaemonSet", "apps/v1", "daemonsets", "daemon_set", apps_pb2.DaemonSet, True, ("daemonset", "ds"),
            strategy=DaemonSetStrategy())
