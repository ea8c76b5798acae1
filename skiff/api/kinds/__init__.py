"""The registry of API kinds: one place that maps a kind to its message class,
its etcd resource name, its `Object` envelope field, whether it is namespaced,
and its Strategy (the kind's rules: skiff/api/kinds/strategy.py).

Each kind is one file in this package exporting `KIND`; registering it here is
the only other line adding a kind takes (besides its proto message and its
`Object` oneof entry). Everything that handles "any object" (the API server,
the store, the CLI) goes through this table and the strategies, never through
a test of which kind it holds.
"""
from __future__ import annotations

from google.protobuf.message import Message

from proto.skiff.v1 import api_pb2
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy
from skiff.api.validation import FieldError

__all__ = ["DescribeContext", "Kind", "KINDS", "Strategy", "UnknownKind", "all_kinds", "envelope_kind",
           "kind_for_resource", "kind_named", "kind_of", "register", "register_unserved", "unwrap", "validate",
           "wrap"]

_BY_NAME: dict[str, Kind] = {}
_BY_FIELD: dict[str, Kind] = {}
_BY_ALIAS: dict[str, Kind] = {}
_BY_MESSAGE: dict[type[Message], Kind] = {}
KINDS: tuple[Kind, ...] = ()


def register(kind: Kind) -> Kind:
    """Add a kind to the registry (its names must be new)."""
    global KINDS
    names = (kind.resource, kind.name.lower(), *kind.aliases)
    if kind.name in _BY_NAME or any(n in _BY_ALIAS for n in names):
        raise ValueError(f"kind {kind.name} is registered twice or reuses a name")
    _BY_NAME[kind.name] = kind
    _BY_FIELD[kind.envelope_field] = kind
    _BY_MESSAGE[kind.message] = kind
    for alias in names:
        _BY_ALIAS[alias] = kind
    KINDS = (*KINDS, kind)
    return kind


def register_unserved(kind: Kind) -> Kind:
    """A kind the store keeps but no API serves (the API server's own state, as Kubernetes'
    RangeAllocation): only `kind_of` knows it, so the store can write and read it; kind_named,
    kind_for_resource, all_kinds and the Object envelope never name it."""
    if kind.message in _BY_MESSAGE or kind.name in _BY_NAME:
        raise ValueError(f"kind {kind.name} is registered twice")
    _BY_MESSAGE[kind.message] = kind
    return kind


def all_kinds() -> tuple[Kind, ...]:
    return KINDS


class UnknownKind(KeyError):
    """Raised for a kind (or CLI resource name) that Skiff does not serve."""

    def __str__(self) -> str:
        return f"unknown kind {self.args[0]!r}; known kinds: {', '.join(k.name for k in KINDS)}"


def kind_named(name: str) -> Kind:
    """The Kind for a manifest's `kind:` value ("Pod")."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownKind(name) from None


def kind_for_resource(word: str) -> Kind:
    """The Kind for what a user types on the command line ("pods", "po", "pod")."""
    try:
        return _BY_ALIAS[word.lower()]
    except KeyError:
        raise UnknownKind(word) from None


def kind_of(obj: Message) -> Kind:
    """The Kind of a typed message (a types_pb2.Pod, ...)."""
    try:
        return _BY_MESSAGE[type(obj)]
    except KeyError:
        raise UnknownKind(type(obj).__name__) from None


def validate(obj: Message) -> list[FieldError]:
    """Every problem in `obj` by its kind's rules (empty when valid)."""
    return kind_of(obj).strategy.validate(obj)


def wrap(obj: Message) -> api_pb2.Object:
    """Put a typed object into the `Object` envelope."""
    envelope = api_pb2.Object()
    getattr(envelope, kind_of(obj).envelope_field).CopyFrom(obj)
    return envelope


def unwrap(envelope: api_pb2.Object) -> Message:
    """The typed object inside an `Object` envelope."""
    field = envelope.WhichOneof("kind")
    if field is None:
        raise ValueError("empty Object envelope")
    return getattr(envelope, field)


def envelope_kind(envelope: api_pb2.Object) -> Kind:
    field = envelope.WhichOneof("kind")
    if field is None:
        raise ValueError("empty Object envelope")
    return _BY_FIELD[field]


# The kinds Skiff serves, in the order `api-resources` lists them.
from skiff.api.kinds import configmap, cronjob, daemonset, deployment, event, horizontalpodautoscaler, job, lease, namespace, node, pod, poddisruptionbudget, replicaset, secret  # noqa: E402  (they import the classes above)
from skiff.api.kinds import endpoints, endpointslice, service  # noqa: E402
from skiff.api.kinds import networkpolicy  # noqa: E402
from skiff.api.kinds import priorityclass  # noqa: E402

for _module in (pod, node, event, lease, namespace, configmap, secret, replicaset, deployment, job, cronjob, daemonset,
                horizontalpodautoscaler, poddisruptionbudget, service, endpoints, endpointslice, priorityclass, networkpolicy):
    register(_module.KIND)
from skiff.api.kinds import rbac  # noqa: E402
for _kind in rbac.KINDS:
    register(_kind)
from skiff.api.kinds import certificatesigningrequest  # noqa: E402
register(certificatesigningrequest.KIND)
from skiff.api.kinds import serviceaccount  # noqa: E402
register(serviceaccount.KIND)
