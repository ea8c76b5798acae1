"""The registry of API kinds: one place that maps a kind to its message class,
its etcd resource name, its `Object` envelope field and whether it is namespaced.

Everything that handles "any object" (the API server, the store, the CLI) goes
through this table, so adding a kind is one line here plus its message.
"""
from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from proto.skiff.v1 import api_pb2, types_pb2


@dataclass(frozen=True)
class Kind:
    name: str             # "Pod"
    api_version: str      # "v1"
    resource: str         # "pods": the etcd key segment and the CLI's plural
    envelope_field: str   # the `Object` oneof field: "pod"
    message: type[Message]
    namespaced: bool
    aliases: tuple[str, ...] = ()  # what the CLI accepts besides `resource`


KINDS: tuple[Kind, ...] = (
    Kind("Pod", "v1", "pods", "pod", types_pb2.Pod, True, ("pod", "po")),
    Kind("Node", "v1", "nodes", "node", types_pb2.Node, False, ("node", "no")),
    Kind("Event", "v1", "events", "event", types_pb2.Event, True, ("event", "ev")),
    Kind("Lease", "coordination.k8s.io/v1", "leases", "lease", types_pb2.Lease, True, ("lease",)),
)

_BY_NAME = {k.name: k for k in KINDS}
_BY_FIELD = {k.envelope_field: k for k in KINDS}
_BY_ALIAS = {alias: k for k in KINDS for alias in (k.resource, k.name.lower(), *k.aliases)}


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
    for k in KINDS:
        if isinstance(obj, k.message):
            return k
    raise UnknownKind(type(obj).__name__)


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
