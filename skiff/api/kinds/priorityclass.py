"""PriorityClass (scheduling.k8s.io/v1, cluster-scoped): a named pod priority.

A pod names its class in spec.priorityClassName; the Priority admission
(controlplane/api/priority.py) writes the class's value into spec.priority
and its preemptionPolicy into spec.preemptionPolicy. The scheduler orders its
queue by priority and preempts lower-priority pods (controlplane/scheduler/).

Kubernetes' rules: a user-defined value is at most 1 000 000 000 (above it
are the built-in system-cluster-critical, 2 000 000 000, and
system-node-critical, 2 000 001 000, which the API server creates at start);
names starting with "system-" are reserved; value and preemptionPolicy are
immutable; at most one class is the global default (checked at admission).
"""
from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import scheduling_pb2
from skiff.api import describing, humanize
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy
from skiff.api.validation import FieldError

HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
SYSTEM_PRIORITY_CLASS_PREFIX = "system-"
# Kubernetes' SystemPriorityClasses: name -> (value, description).
SYSTEM_CLASSES = {
    "system-node-critical": (2_000_001_000, "Used for system critical pods that must not be moved from their "
                                            "current node."),
    "system-cluster-critical": (2_000_000_000, "Used for system critical pods that must run in the cluster, but "
                                               "can be moved to another node if necessary."),
}
PREEMPTION_POLICIES = ("PreemptLowerPriority", "Never")


def system_class(name: str) -> scheduling_pb2.PriorityClass:
    value, description = SYSTEM_CLASSES[name]
    pc = scheduling_pb2.PriorityClass(value=value, description=description, preemption_policy="PreemptLowerPriority")
    pc.metadata.name = name
    return pc


class PriorityClassStrategy(Strategy):
    immutable_fields = ("value", "preemptionPolicy")

    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        if not obj.HasField("preemption_policy"):
            obj.preemption_policy = "PreemptLowerPriority"
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        errors = super().validate(obj)
        name = obj.metadata.name
        if name.startswith(SYSTEM_PRIORITY_CLASS_PREFIX):
            if name not in SYSTEM_CLASSES:
                errors.append(FieldError("metadata.name", "Forbidden: priority class names with 'system-' prefix "
                                                          "are reserved for system use only"))
            elif obj.value != SYSTEM_CLASSES[name][0]:
                errors.append(FieldError("value", f"Forbidden: value of {name} must be {SYSTEM_CLASSES[name][0]}"))
        elif obj.value > HIGHEST_USER_DEFINABLE_PRIORITY:
            errors.append(FieldError("value", f"Forbidden: maximum allowed value of a user defined priority is "
                                              f"{HIGHEST_USER_DEFINABLE_PRIORITY}"))
        if obj.preemption_policy and obj.preemption_policy not in PREEMPTION_POLICIES:   # "": the default
            errors.append(FieldError("preemptionPolicy", f'Unsupported value: "{obj.preemption_policy}": supported '
                                                         f'values: "Never", "PreemptLowerPriority"'))
        return errors

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        return [obj.metadata.name, str(obj.value), "true" if obj.global_default else "false",
                humanize.age(obj.metadata.creation_timestamp, now=now), obj.preemption_policy]

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        describing.header(text, obj)
        text.multiline("Value", str(obj.value))
        text.multiline("GlobalDefault", "true" if obj.global_default else "false")
        text.multiline("PreemptionPolicy", obj.preemption_policy)
        text.multiline("Description", obj.description)
        describing.events(text, ctx.events, now=ctx.now)
        return str(text)


KIND = Kind("PriorityClass", "scheduling.k8s.io/v1", "priorityclasses", "priority_class", scheduling_pb2.PriorityClass,
            False, ("priorityclass", "pc"), strategy=PriorityClassStrategy())
