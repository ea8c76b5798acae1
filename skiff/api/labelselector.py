"""meta/v1 LabelSelector (matchLabels + matchExpressions) as workload kinds
write it, turned into the selector `skiff.api.selectors` matches with, checked,
and printed the way kubectl prints it (`app=nginx,tier in (web)`)."""
from __future__ import annotations

from typing import Mapping

from proto.skiff.v1 import apps_pb2
from skiff.api import selectors
from skiff.api.validation import FieldError

OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def to_selector(sel: apps_pb2.LabelSelector) -> selectors.LabelSelector:
    """The requirements of `sel`; an empty selector matches everything (as
    Kubernetes' LabelSelectorAsSelector). Call `validate` first."""
    requirements = [selectors.Requirement(k, "=", (v,)) for k, v in sorted(sel.match_labels.items())]
    for expr in sel.match_expressions:
        requirements.append(selectors.Requirement(expr.key, OPERATORS[expr.operator], tuple(expr.values)))
    return selectors.LabelSelector(tuple(requirements))


def matches(sel: apps_pb2.LabelSelector, labels: Mapping[str, str]) -> bool:
    return to_selector(sel).matches(labels)


def is_empty(sel: apps_pb2.LabelSelector) -> bool:
    return not sel.match_labels and not sel.match_expressions


def validate(sel: apps_pb2.LabelSelector, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, expr in enumerate(sel.match_expressions):
        where = f"{path}.matchExpressions[{i}]"
        if not expr.key:
            errors.append(FieldError(f"{where}.key", "required"))
        if expr.operator not in OPERATORS:
            errors.append(FieldError(f"{where}.operator",
                                     f"Unsupported value: {expr.operator!r}: supported values: "
                                     f"{', '.join(repr(o) for o in OPERATORS)}"))
        elif expr.operator in ("In", "NotIn") and not expr.values:
            errors.append(FieldError(f"{where}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif expr.operator in ("Exists", "DoesNotExist") and expr.values:
            errors.append(FieldError(f"{where}.values",
                                     "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    return errors


def to_text(sel: apps_pb2.LabelSelector) -> str:
    """kubectl's rendering (`-o wide` SELECTOR): `app=nginx,env in (a,b),!gpu`."""
    parts = [f"{k}={v}" for k, v in sorted(sel.match_labels.items())]
    for expr in sel.match_expressions:
        if expr.operator in ("In", "NotIn"):
            parts.append(f"{expr.key} {OPERATORS[expr.operator]} ({','.join(sorted(expr.values))})")
        elif expr.operator == "Exists":
            parts.append(expr.key)
        else:
            parts.append(f"!{expr.key}")
    return ",".join(parts) or "<none>"
