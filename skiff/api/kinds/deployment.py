"""Deployment (apps/v1): a pod template rolled out through one ReplicaSet per
template revision (controlplane/controllers/deployment.py does the rolling).

Defaults as Kubernetes': replicas 1, strategy RollingUpdate with 25% surge and
25% unavailable, revisionHistoryLimit 10, progressDeadlineSeconds 600, the pod
defaults in the template. Checks: the selector (not empty, matches the
template's labels, immutable), replicas >= 0, a valid template with
restartPolicy Always, maxSurge and maxUnavailable integers or percentages and
not both 0, no rollingUpdate with Recreate, progressDeadlineSeconds above
minReadySeconds.
"""
from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import apps_pb2
from skiff.api import describing, humanize, intstr, labelselector, rollout, workload
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy
from skiff.api.validation import FieldError

STRATEGIES = ("Recreate", "RollingUpdate")
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600


class DeploymentStrategy(Strategy):
    immutable_fields = ("spec.selector",)

    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        spec = obj.spec
        if not spec.HasField("replicas"):
            spec.replicas = 1
        spec.strategy.type = spec.strategy.type or "RollingUpdate"
        if spec.strategy.type == "RollingUpdate":
            rolling = spec.strategy.rolling_update
            rolling.max_surge = rolling.max_surge or "25%"
            rolling.max_unavailable = rolling.max_unavailable or "25%"
        if not spec.HasField("revision_history_limit"):
            spec.revision_history_limit = DEFAULT_REVISION_HISTORY_LIMIT
        if not spec.HasField("progress_deadline_seconds"):
            spec.progress_deadline_seconds = DEFAULT_PROGRESS_DEADLINE_SECONDS
        workload.default_template(spec.template)
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        spec = obj.spec
        errors = super().validate(obj) + workload.validate_selected_template(spec, kind="deployment")
        errors += _validate_strategy(spec.strategy)
        if spec.HasField("revision_history_limit") and spec.revision_history_limit < 0:
            errors.append(FieldError("spec.revisionHistoryLimit", f"Invalid value: {spec.revision_history_limit}: "
                                                                  f"must be greater than or equal to 0"))
        if spec.HasField("progress_deadline_seconds"):
            if spec.progress_deadline_seconds < 0:
                errors.append(FieldError("spec.progressDeadlineSeconds",
                                         f"Invalid value: {spec.progress_deadline_seconds}: "
                                         f"must be greater than or equal to 0"))
            elif spec.progress_deadline_seconds <= spec.min_ready_seconds:
                errors.append(FieldError("spec.progressDeadlineSeconds",
                                         f"Invalid value: {spec.progress_deadline_seconds}: "
                                         f"must be greater than minReadySeconds"))
        return errors

    def prepare_create(self, obj: Message) -> Message:
        super().prepare_create(obj)
        obj.ClearField("status")
        return obj

    def prepare_status_update(self, old: Message, new: Message) -> Message:
        # As Kubernetes' deployment status strategy: the controller writes the
        # revision annotation along with the status (spec and labels stay).
        result = super().prepare_status_update(old, new)
        result.metadata.annotations.clear()
        result.metadata.annotations.update(new.metadata.annotations)
        return result

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] + (["CONTAINERS", "IMAGES", "SELECTOR"]
                                                                       if wide else [])

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        s = obj.status
        row = [obj.metadata.name, f"{s.ready_replicas}/{obj.spec.replicas}", str(s.updated_replicas),
               str(s.available_replicas), humanize.age(obj.metadata.creation_timestamp, now=now)]
        return row + (workload.wide_columns(obj.spec.template, obj.spec.selector) if wide else [])

    def describe_related(self, obj: Message) -> dict[str, tuple[str, str]]:
        return {"ReplicaSet": (obj.metadata.namespace, "")}

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        return describe_deployment(obj, ctx)


def _validate_strategy(strategy: apps_pb2.DeploymentStrategy) -> list[FieldError]:
    path = "spec.strategy"
    if strategy.type and strategy.type not in STRATEGIES:  # "": RollingUpdate, by default
        return [FieldError(f"{path}.type", f'Unsupported value: "{strategy.type}": supported values: '
                                           f'"Recreate", "RollingUpdate"')]
    rolling = strategy.rolling_update
    if strategy.type == "Recreate":
        if strategy.HasField("rolling_update"):
            return [FieldError(f"{path}.rollingUpdate",
                               "Forbidden: may not be specified when strategy `type` is 'Recreate'")]
        return []
    errors: list[FieldError] = []
    for field, value in (("maxUnavailable", rolling.max_unavailable), ("maxSurge", rolling.max_surge)):
        if value and (problem := intstr.check(value)):
            errors.append(FieldError(f"{path}.rollingUpdate.{field}", f"Invalid value: {problem}"))
    if not errors and _is_zero(rolling.max_surge) and _is_zero(rolling.max_unavailable):
        errors.append(FieldError(f"{path}.rollingUpdate.maxUnavailable",
                                 "Invalid value: 0: may not be 0 when `maxSurge` is 0"))
    return errors


def _is_zero(value: str) -> bool:
    return value in ("0", "0%")


KIND = Kind("Deployment", "apps/v1", "deployments", "deployment", apps_pb2.Deployment, True,
            ("deployment", "deploy"), strategy=DeploymentStrategy())


# ---------------------------------------------------------------- describe

def describe_deployment(d: apps_pb2.Deployment, ctx: DescribeContext) -> str:
    text = describing.Text()
    m, spec, s = d.metadata, d.spec, d.status
    w = 24
    text.multiline("Name", m.name, width=w)
    text.multiline("Namespace", m.namespace, width=w)
    text.multiline("CreationTimestamp", describing.ts(m.creation_timestamp), width=w)
    text.multiline("Labels", describing.map_text(m.labels), width=w)
    text.multiline("Annotations", "\n".join(f"{k}: {v}" for k, v in sorted(m.annotations.items())) or "<none>",
                   width=w)
    text.multiline("Selector", labelselector.to_text(spec.selector), width=w)
    text.multiline("Replicas", f"{spec.replicas} desired | {s.updated_replicas} updated | {s.replicas} total | "
                               f"{s.available_replicas} available | {s.unavailable_replicas} unavailable", width=w)
    text.multiline("StrategyType", spec.strategy.type, width=w)
    text.multiline("MinReadySeconds", str(spec.min_ready_seconds), width=w)
    if spec.strategy.type == "RollingUpdate":
        r = spec.strategy.rolling_update
        text.multiline("RollingUpdateStrategy", f"{r.max_unavailable} max unavailable, {r.max_surge} max surge",
                       width=w)
    workload.describe_template(text, spec.template)
    workload.conditions_table(text, s.conditions)
    sets = workload.owned(d, ctx.related.get("ReplicaSet", []))
    new = [rs for rs in sets if rollout.equal_ignore_hash(rs.spec.template, spec.template)]
    old = [rs for rs in sets if rs not in new and rs.spec.replicas > 0]

    def shown(items: list[Message]) -> str:
        return ", ".join(f"{rs.metadata.name} ({rs.status.replicas}/{rs.spec.replicas} replicas created)"
                         for rs in items) or "<none>"

    text.multiline("OldReplicaSets", shown(old), width=17)
    text.multiline("NewReplicaSet", shown(new[:1]), width=17)
    describing.events(text, ctx.events, now=ctx.now)
    return str(text)
