"""Label and field selectors, parsed once and matched against objects.

Label selectors use Kubernetes' syntax: `app=web`, `app==web`, `tier!=db`,
`env in (prod,staging)`, `env notin (dev)`, `gpu` (key exists), `!gpu`
(key absent); terms joined by commas all have to match.

Field selectors support `=`, `==` and `!=` on the fields the API serves
(Kubernetes supports a similar short list): metadata.name,
metadata.namespace, and what each kind's strategy adds (`field_selectors`:
for pods spec.nodeName, status.phase, spec.restartPolicy; for nodes
spec.unschedulable). Shared by the API server (List/Watch) and the CLI.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from google.protobuf.message import Message

from skiff.api import kinds


class SelectorError(ValueError):
    """A selector that does not parse; the message quotes the bad term."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str                       # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the key too, as in Kubernetes.
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_TERM = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_TERM = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*$")
_EXISTS_TERM = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return [t for t in terms if t.strip()]


def parse_label_selector(text: str) -> LabelSelector:
    requirements = []
    for term in _split_terms(text or ""):
        if m := _SET_TERM.match(term):
            values = tuple(v.strip() for v in m.group(4).split(",") if v.strip())
            if not values:
                raise SelectorError(f"invalid label selector term {term.strip()!r}: empty value set")
            requirements.append(Requirement(m.group(1), m.group(3), values))
        elif m := _EQ_TERM.match(term):
            op = "=" if m.group(3) in ("=", "==") else "!="
            requirements.append(Requirement(m.group(1), op, (m.group(4),)))
        elif m := _EXISTS_TERM.match(term):
            requirements.append(Requirement(m.group(2), "!" if m.group(1) else "exists"))
        else:
            raise SelectorError(f"invalid label selector term {term.strip()!r}: expected key=value, "
                                f"key!=value, key in (a,b), key notin (a,b), key or !key")
    return LabelSelector(tuple(requirements))


# ---------------------------------------------------------------- fields

@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str
    get: Callable[[Message], str]

    def matches(self, obj: Message) -> bool:
        return (self.get(obj) == self.value) == (self.op == "=")


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Message) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


_FIELD_TERM = re.compile(r"^\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*$")


def parse_field_selector(text: str, *, kind: str | kinds.Kind) -> FieldSelector:
    """Parse for objects of `kind` (a Kind, or its name: "Pod", "Node", ...)."""
    kind = kinds.kind_named(kind) if isinstance(kind, str) else kind
    known = kind.strategy.field_selectors
    kind = kind.name
    requirements = []
    for term in _split_terms(text or ""):
        m = _FIELD_TERM.match(term)
        if not m:
            raise SelectorError(f"invalid field selector term {term.strip()!r}: expected field=value or field!=value")
        field, op, value = m.groups()
        if field not in known:
            raise SelectorError(f"field selector {field!r} is not supported for {kind}; "
                                f"supported: {', '.join(sorted(known))}")
        requirements.append(FieldRequirement(field, "=" if op in ("=", "==") else "!=", value, known[field]))
    return FieldSelector(tuple(requirements))
