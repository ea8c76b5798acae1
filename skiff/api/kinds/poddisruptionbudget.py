"""PodDisruptionBudget (policy/v1): how many of a set of pods must stay
available while pods are evicted (a drain). The disruption controller
(controlplane/controllers/disruption.py) keeps its status - how many
disruptions are allowed now - and the pods' eviction subresource
(controlplane/api/eviction.py) spends them.

Checks as Kubernetes': exactly one of minAvailable and maxUnavailable, each an
integer >= 0 or a percentage up to 100 %; a valid selector (an empty one
selects every pod of the namespace, as in policy/v1); unhealthyPodEvictionPolicy
IfHealthyBudget or AlwaysAllow. A user's status is ignored on create.
"""
from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import policy_pb2
from skiff.api import describing, humanize, intstr, labelselector
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy
from skiff.api.validation import FieldError

UNHEALTHY_POLICIES = ("IfHealthyBudget", "AlwaysAllow")


def budget_errors(spec: Message, path: str = "spec") -> list[FieldError]:
    """What is wrong with a PodDisruptionBudgetSpec (pure; the kind's rules)."""
    errors: list[FieldError] = []
    has_min, has_max = spec.HasField("min_available"), spec.HasField("max_unavailable")
    if has_min and has_max:
        errors.append(FieldError(path, "Invalid value: minAvailable and maxUnavailable cannot be both set"))
    elif not has_min and not has_max:
        errors.append(FieldError(f"{path}.minAvailable",
                                 "Required value: one of minAvailable and maxUnavailable must be set"))
    for field, name in (("min_available", "minAvailable"), ("max_unavailable", "maxUnavailable")):
        if spec.HasField(field) and (problem := intstr.check(getattr(spec, field))):
            errors.append(FieldError(f"{path}.{name}", f"Invalid value: {problem}"))
    errors += labelselector.validate(spec.selector, f"{path}.selector")
    policy = spec.unhealthy_pod_eviction_policy
    if policy and policy not in UNHEALTHY_POLICIES:
        errors.append(FieldError(f"{path}.unhealthyPodEvictionPolicy",
                                 f'Unsupported value: "{policy}": supported values: "IfHealthyBudget", '
                                 f'"AlwaysAllow"'))
    return errors


class PodDisruptionBudgetStrategy(Strategy):
    def validate(self, obj: Message) -> list[FieldError]:
        return super().validate(obj) + budget_errors(obj.spec)

    def prepare_create(self, obj: Message) -> Message:
        super().prepare_create(obj)
        obj.ClearField("status")
        return obj

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        spec = obj.spec
        return [obj.metadata.name,
                spec.min_available if spec.HasField("min_available") else "N/A",
                spec.max_unavailable if spec.HasField("max_unavailable") else "N/A",
                str(obj.status.disruptions_allowed), humanize.age(obj.metadata.creation_timestamp, now=now)]

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        m, spec, s = obj.metadata, obj.spec, obj.status
        w = 16
        text.multiline("Name", m.name, width=w)
        text.multiline("Namespace", m.namespace, width=w)
        if spec.HasField("min_available"):
            text.multiline("Min available", spec.min_available, width=w)
        else:
            text.multiline("Max unavailable", spec.max_unavailable, width=w)
        text.multiline("Selector", labelselector.to_text(spec.selector), width=w)
        text.line("Status:")
        text.multiline("    Allowed disruptions", str(s.disruptions_allowed), width=26)
        text.multiline("    Current", str(s.current_healthy), width=26)
        text.multiline("    Desired", str(s.desired_healthy), width=26)
        text.multiline("    Total", str(s.expected_pods), width=26)
        describing.events(text, ctx.events, now=ctx.now)
        return str(text)


KIND = Kind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", "pod_disruption_budget",
            policy_pb2.PodDisruptionBudget, True, ("poddisruptionbudget", "pdb"),
            strategy=PodDisruptionBudgetStrategy())
