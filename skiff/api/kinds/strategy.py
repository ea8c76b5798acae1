"""What a kind is and how the API treats its objects: `Kind` (the table row:
names, message, scope) and `Strategy` (the rules: Kubernetes'
`registry/<group>/<kind>/strategy.go`).

A Strategy is pure: it turns messages into messages or into FieldErrors and
never does I/O, so the API server's registry, the in-memory fake and the CLI
(which validates before sending) all run the same rules. The base class
holds the generic behaviour every kind shares; a kind's file overrides only
what is its own:

    create:  defaults → validate → prepare_create            → store.create
    update:  defaults → validate → prepare_update(old, new)  → validate_update(old, new) → store.update
    status:  prepare_status_update(old, new) → validate      → store.update
    delete:  on_delete(obj, grace) → a marked object to store, or None: remove now

Generic code (registry, store, printers, describe, selectors, manifest, CLI)
asks the strategy; it never tests which kind it holds.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from google.protobuf.message import Message

from skiff.api import describing, humanize, meta
from skiff.api.owners import finalizer_errors, owner_reference_errors
from skiff.api.validation import FieldError, object_size_error, timestamp_errors, validate_metadata

DEFAULT_NAMESPACE = "default"
FieldGetter = Callable[[Message], str]


@dataclass(frozen=True)
class Kind:
    name: str             # "Pod"
    api_version: str      # "v1"
    resource: str         # "pods": the etcd key segment and the CLI's plural
    envelope_field: str   # the `Object` oneof field: "pod"
    message: type[Message]
    namespaced: bool
    aliases: tuple[str, ...] = ()  # what the CLI accepts besides `resource`
    strategy: "Strategy" = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        strategy = self.strategy if self.strategy is not None else Strategy()
        object.__setattr__(self, "strategy", strategy)
        strategy.kind = self


def getter(*path: str) -> FieldGetter:
    """A field selector's getter: the value at `path` (proto names) as text."""
    def get(obj: Message) -> str:
        value: object = obj
        for part in path:
            value = getattr(value, part)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    return get


@dataclass
class DescribeContext:
    """What `describe` fetched besides the object: the events about it and the
    lists its strategy asked for (`describe_related`), keyed by kind name."""
    events: list[Message]
    now: datetime
    related: dict[str, list[Message]] = field(default_factory=dict)


def has_field(obj: Message, name: str) -> bool:
    return name in type(obj).DESCRIPTOR.fields_by_name


class Strategy:
    """The generic rules; kind files subclass and override."""

    kind: Kind
    # Storage: >0 makes objects of the kind expire this long after their last
    # write (Event, as Kubernetes' --event-ttl). The store's own setting wins.
    ttl_seconds: float = 0.0
    # JSON paths ("spec.selector") an update may not change.
    immutable_fields: tuple[str, ...] = ()

    # ------------------------------------------------------------ create / update

    def defaults(self, obj: Message) -> Message:
        """Fill what the user may leave out (in place; returns obj)."""
        obj.kind, obj.api_version = self.kind.name, self.kind.api_version
        if self.kind.namespaced:
            obj.metadata.namespace = obj.metadata.namespace or DEFAULT_NAMESPACE
        else:
            obj.metadata.namespace = ""
        if not obj.metadata.name and obj.metadata.generate_name:
            obj.metadata.name = obj.metadata.generate_name + uuid.uuid4().hex[:5]
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        """Every problem in `obj` (empty when valid); the whole object must fit a store write,
        and its timestamps a Timestamp."""
        size = object_size_error(obj)
        return (validate_metadata(obj) + owner_reference_errors(obj, namespaced=self.kind.namespaced)
                + finalizer_errors(obj) + ([size] if size else []) + timestamp_errors(obj))

    def validate_status(self, obj: Message) -> list[FieldError]:
        """What a status write (`obj`: the stored object with the new status) must pass. The
        whole object by default; a kind whose spec the status endpoint cannot change may skip it
        (Kubernetes' status strategies validate the status and the metadata, not the spec)."""
        return self.validate(obj)

    def required(self, obj: Message) -> list[FieldError]:
        """The structural must-haves (a subset of validate), which the manifest
        reader reports even beside a document's other errors."""
        return []

    def warnings(self, obj: Message) -> list[str]:
        """What the server accepts but tells the writer (Kubernetes' warning
        headers; the CLI prints each as `Warning: ...`): fields stored but not
        implemented, for instance. Never a reason to refuse."""
        return []

    def validate_update(self, old: Message, new: Message) -> list[FieldError]:
        """What `new` (already merged by prepare_update) may not change from `old`."""
        return [FieldError(path, "field is immutable") for path in self.immutable_fields
                if json_path_value(old, path) != json_path_value(new, path)]

    def requested_by(self, obj: Message, *, user: str, groups: tuple[str, ...], uid: str = "") -> None:
        """At create on a secure server: who asked (CertificateSigningRequest records it in its spec,
        from the credential, as Kubernetes' strategies read the request's user). Most kinds ignore it."""

    def prepare_create(self, obj: Message) -> Message:
        """A new object's server-owned metadata (in place; returns obj)."""
        m = obj.metadata
        m.uid = str(uuid.uuid4())
        m.resource_version = ""
        m.generation = 1
        m.creation_timestamp.CopyFrom(meta.timestamp())
        m.ClearField("deletion_timestamp")
        m.deletion_grace_period_seconds = 0
        return obj

    def prepare_update(self, old: Message, new: Message) -> Message:
        """What the spec endpoint stores when `new` replaces `old`: server-owned
        metadata and the status are kept; generation +1 only when the spec changes."""
        result = meta.copy(new)
        m, was = result.metadata, old.metadata
        m.uid, m.generation = was.uid, was.generation
        m.creation_timestamp.CopyFrom(was.creation_timestamp)
        if was.HasField("deletion_timestamp"):
            m.deletion_timestamp.CopyFrom(was.deletion_timestamp)
            m.deletion_grace_period_seconds = was.deletion_grace_period_seconds
        else:
            m.ClearField("deletion_timestamp")
            m.deletion_grace_period_seconds = 0
        if has_field(old, "status"):
            result.status.CopyFrom(old.status)
        if has_field(old, "spec") and result.spec != old.spec:
            m.generation = was.generation + 1
        return result

    def prepare_apply(self, old: Message, new: Message) -> Message:
        """Apply's variant of prepare_update: what a manifest never names is
        kept (finalizers others set; kinds add their own, as a pod's node)."""
        if not new.metadata.finalizers and old.metadata.finalizers:
            new = meta.copy(new)
            new.metadata.finalizers[:] = old.metadata.finalizers
        return self.prepare_update(old, new)

    def prepare_status_update(self, old: Message, new: Message) -> Message:
        """What the status endpoint stores: `old` with only its status replaced."""
        result = meta.copy(old)
        result.status.CopyFrom(new.status)
        return result

    @property
    def has_status(self) -> bool:
        return "status" in self.kind.message.DESCRIPTOR.fields_by_name

    # ------------------------------------------------------------ delete

    def delete_refused(self, obj: Message) -> str | None:
        """Why this object may never be deleted (the API answers Forbidden), or None."""
        return None

    def on_delete(self, obj: Message, grace_seconds: int | None) -> Message | None:
        """None: remove the object now (once no finalizer holds it). Otherwise
        the object to keep instead (marked for a graceful deletion); returning
        `obj` unchanged means "already marked, nothing to write"."""
        return None

    def finalizers(self, obj: Message) -> list[str]:
        """What still holds a deleted object (metadata.finalizers; kinds may add their own)."""
        return list(obj.metadata.finalizers)

    # ------------------------------------------------------------ reading

    @property
    def field_selectors(self) -> dict[str, FieldGetter]:
        return {"metadata.name": getter("metadata", "name"),
                "metadata.namespace": getter("metadata", "namespace")}

    def sort_key(self, obj: Message) -> Any:
        """How `get` orders a list (by name, as the store returns it)."""
        return (obj.metadata.namespace, obj.metadata.name)

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "AGE"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        return [obj.metadata.name, humanize.age(obj.metadata.creation_timestamp, now=now)]

    def describe_related(self, obj: Message) -> dict[str, tuple[str, str]]:
        """Lists `describe` needs besides events: {kind name: (namespace, field selector)}."""
        return {}

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        """Name, namespace, labels and annotations, then the object's other
        fields as YAML-ish text, then its events (kubectl's generic describer)."""
        text = describing.Text()
        describing.header(text, obj)
        describing.fields(text, obj)
        describing.events(text, ctx.events, now=ctx.now)
        return str(text)


def json_path_value(obj: Message, path: str) -> Any:
    """The value at a JSON-named path ("spec.selector"), for comparisons."""
    value: Any = obj
    for part in path.split("."):
        fields = {f.json_name: f.name for f in value.DESCRIPTOR.fields}
        value = getattr(value, fields.get(part, part))
    if isinstance(value, (str, bytes, int, float, bool, Message)):
        return value
    return dict(value.items()) if hasattr(value, "items") else list(value)  # a map or a repeated field
