"""HorizontalPodAutoscaler (autoscaling/v2): keeps a Deployment's or
ReplicaSet's replicas where its pods' CPU or memory use meets a target
(controlplane/controllers/horizontalpodautoscaler.py does the scaling).

Defaults as Kubernetes' API server: minReplicas 1; no metrics means CPU at
80 % of requests; behavior's scale-up rules have no stabilization window and
allow the larger of 4 pods or 100 % per 15 s, scale-down's a 300 s window and
100 % per 15 s, selectPolicy Max. Only Resource metrics (cpu, memory) with
Utilization or AverageValue targets are served.
"""
from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import autoscaling_pb2
from skiff.api import describing, humanize
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy
from skiff.api.validation import FieldError

SCALABLE = ("Deployment", "ReplicaSet")
RESOURCES = ("cpu", "memory")
POLICY_TYPES = ("Pods", "Percent")
SELECT_POLICIES = ("Max", "Min", "Disabled")


def _default_rules(rules: Message, *, window: int, policies: list[tuple[str, int]]) -> None:
    if not rules.HasField("stabilization_window_seconds"):
        rules.stabilization_window_seconds = window
    rules.select_policy = rules.select_policy or "Max"
    if not rules.policies:
        for type_, value in policies:
            rules.policies.add(type=type_, value=value, period_seconds=15)


class HorizontalPodAutoscalerStrategy(Strategy):
    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        spec = obj.spec
        if not spec.HasField("min_replicas"):
            spec.min_replicas = 1
        if not spec.metrics:
            spec.metrics.add(type="Resource", resource=autoscaling_pb2.ResourceMetricSource(
                name="cpu", target=autoscaling_pb2.MetricTarget(type="Utilization", average_utilization=80)))
        _default_rules(spec.behavior.scale_up, window=0, policies=[("Pods", 4), ("Percent", 100)])
        _default_rules(spec.behavior.scale_down, window=300, policies=[("Percent", 100)])
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        spec = obj.spec
        errors = super().validate(obj)
        ref = spec.scale_target_ref
        if not ref.kind:
            errors.append(FieldError("spec.scaleTargetRef.kind", "Required value"))
        elif ref.kind not in SCALABLE:
            errors.append(FieldError("spec.scaleTargetRef.kind", f'Unsupported value: "{ref.kind}": supported '
                                                                 f'values: "Deployment", "ReplicaSet"'))
        if not ref.name:
            errors.append(FieldError("spec.scaleTargetRef.name", "Required value"))
        if spec.HasField("min_replicas") and spec.min_replicas < 1:
            errors.append(FieldError("spec.minReplicas", f"Invalid value: {spec.min_replicas}: "
                                                         f"must be greater than or equal to 1"))
        if spec.max_replicas < max(spec.min_replicas, 1):
            errors.append(FieldError("spec.maxReplicas", f"Invalid value: {spec.max_replicas}: must be greater "
                                                         f"than or equal to `minReplicas`"))
        for i, metric in enumerate(spec.metrics):
            path = f"spec.metrics[{i}]"
            if metric.type != "Resource":
                errors.append(FieldError(f"{path}.type", f'Unsupported value: "{metric.type}": supported '
                                                         f'values: "Resource"'))
                continue
            if metric.resource.name not in RESOURCES:
                errors.append(FieldError(f"{path}.resource.name", f'Unsupported value: "{metric.resource.name}": '
                                                                  f'supported values: "cpu", "memory"'))
            target = metric.resource.target
            if target.type == "Utilization":
                if not target.HasField("average_utilization") or target.average_utilization <= 0:
                    errors.append(FieldError(f"{path}.resource.target.averageUtilization",
                                             "Required value: must be greater than 0"))
            elif target.type == "AverageValue":
                if not target.average_value:
                    errors.append(FieldError(f"{path}.resource.target.averageValue", "Required value"))
            else:
                errors.append(FieldError(f"{path}.resource.target.type", f'Unsupported value: "{target.type}": '
                                                                        f'supported values: "Utilization", '
                                                                        f'"AverageValue"'))
        for name, rules in (("scaleUp", spec.behavior.scale_up), ("scaleDown", spec.behavior.scale_down)):
            path = f"spec.behavior.{name}"
            if not 0 <= rules.stabilization_window_seconds <= 3600:
                errors.append(FieldError(f"{path}.stabilizationWindowSeconds",
                                         f"Invalid value: {rules.stabilization_window_seconds}: must be between "
                                         f"0 and 3600"))
            if rules.select_policy and rules.select_policy not in SELECT_POLICIES:
                errors.append(FieldError(f"{path}.selectPolicy", f'Unsupported value: "{rules.select_policy}"'))
            for j, policy in enumerate(rules.policies):
                if policy.type not in POLICY_TYPES:
                    errors.append(FieldError(f"{path}.policies[{j}].type", f'Unsupported value: "{policy.type}"'))
                if policy.value <= 0:
                    errors.append(FieldError(f"{path}.policies[{j}].value", f"Invalid value: {policy.value}: "
                                                                            f"must be greater than zero"))
                if not 0 < policy.period_seconds <= 1800:
                    errors.append(FieldError(f"{path}.policies[{j}].periodSeconds",
                                             f"Invalid value: {policy.period_seconds}: must be between 1 and 1800"))
        return errors

    def prepare_create(self, obj: Message) -> Message:
        super().prepare_create(obj)
        obj.ClearField("status")
        return obj

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        spec = obj.spec
        return [obj.metadata.name, f"{spec.scale_target_ref.kind}/{spec.scale_target_ref.name}", targets_text(obj),
                str(spec.min_replicas), str(spec.max_replicas), str(obj.status.current_replicas),
                humanize.age(obj.metadata.creation_timestamp, now=now)]

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        m, spec, s = obj.metadata, obj.spec, obj.status
        w = 54
        text.multiline("Name", m.name, width=w)
        text.multiline("Namespace", m.namespace, width=w)
        text.multiline("Labels", describing.map_text(m.labels), width=w)
        text.multiline("Annotations", describing.map_text(m.annotations), width=w)
        text.multiline("Reference", f"{spec.scale_target_ref.kind}/{spec.scale_target_ref.name}", width=w)
        text.multiline("Metrics", "( current / target )", width=w)
        for metric, current in zip(spec.metrics, _currents(obj)):
            what = "resource " + metric.resource.name + (" on pods  (as a percentage of request)"
                                                         if metric.resource.target.type == "Utilization" else
                                                         " on pods")
            text.multiline("  " + what, f"{current} / {_target(metric)}", width=w)
        text.multiline("Min replicas", str(spec.min_replicas), width=w)
        text.multiline("Max replicas", str(spec.max_replicas), width=w)
        text.multiline(f"{spec.scale_target_ref.kind} pods",
                       f"{s.current_replicas} current / {s.desired_replicas} desired", width=w)
        if s.conditions:
            text.line("Conditions:")
            text.table([["Type", "Status", "Reason", "Message"], ["----", "------", "------", "-------"],
                        *([c.type, c.status, c.reason, c.message] for c in s.conditions)])
        describing.events(text, ctx.events, now=ctx.now)
        return str(text)


def _target(metric: Message) -> str:
    t = metric.resource.target
    return f"{t.average_utilization}%" if t.type == "Utilization" else t.average_value


def _currents(obj: Message) -> list[str]:
    """Each spec metric's current value as kubectl prints it (<unknown> until measured)."""
    found = {m.resource.name: m.resource.current for m in obj.status.current_metrics if m.type == "Resource"}
    out = []
    for metric in obj.spec.metrics:
        current = found.get(metric.resource.name)
        if current is None:
            out.append("<unknown>")
        elif metric.resource.target.type == "Utilization":
            out.append(f"{current.average_utilization}%" if current.HasField("average_utilization") else "<unknown>")
        else:
            out.append(current.average_value or "<unknown>")
    return out


def targets_text(obj: Message) -> str:
    """kubectl's TARGETS column: `cpu: 35%/50%, memory: <unknown>/200Mi`."""
    parts = [f"{m.resource.name}: {current}/{_target(m)}" for m, current in zip(obj.spec.metrics, _currents(obj))]
    return ", ".join(parts) or "<none>"


KIND = Kind("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers", "horizontal_pod_autoscaler",
            autoscaling_pb2.HorizontalPodAutoscaler, True, ("horizontalpodautoscaler", "hpa"),
            strategy=HorizontalPodAutoscalerStrategy())
