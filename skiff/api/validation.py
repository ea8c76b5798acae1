"""The building blocks of validation: FieldError, name rules (RFC 1123) and
the metadata checks every kind shares. Pure functions, no I/O.

A kind's own rules live in its strategy (skiff/api/kinds/<kind>.py), and
`skiff.api.kinds.validate(obj)` runs them: every problem as a FieldError whose
`path` uses the manifest's (Kubernetes JSON) names, e.g.
"spec.containers[0].resources.limits.memory". The API server rejects an object
with any error (INVALID_ARGUMENT, the first path in trailing metadata); the
CLI runs the same function before sending and adds the file, document index
and line.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _cut(value: str, limit: int = 100) -> str:
    """What an error echoes of a value: never a megabyte of it."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"


def dns1123_label_error(value: str) -> str | None:
    if not value:
        return "required"
    if len(value) > 63:
        return f"{_cut(value)!r}: must be no more than 63 characters"
    if not _DNS1123_LABEL.match(value):
        return (f"{_cut(value)!r}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                f"or '-', and must start and end with an alphanumeric character")
    return None


def dns1123_subdomain_error(value: str) -> str | None:
    if not value:
        return "required"
    if len(value) > 253:
        return f"{_cut(value)!r}: must be no more than 253 characters"
    if not _DNS1123_SUBDOMAIN.match(value):
        return (f"{_cut(value)!r}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                f"characters, '-' or '.', and must start and end with an alphanumeric character")
    return None


_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_QUALIFIED_NAME_RULE = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                        "with an alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc')")
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
"""Kubernetes' limit on all of an object's annotations, keys and values counted in bytes."""


def qualified_name_error(value: str) -> str | None:
    """Kubernetes' IsQualifiedName (label and annotation keys): an optional
    DNS-subdomain prefix and '/', then a name of at most 63 characters."""
    parts = value.split("/")
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return "prefix part must be non-empty"
        if problem := dns1123_subdomain_error(prefix):
            return f"prefix part {problem.split(': ', 1)[-1]}"
    elif len(parts) == 1:
        name = parts[0]
    else:
        return ("a qualified name " + _QUALIFIED_NAME_RULE + " with an optional DNS subdomain prefix "
                "and '/' (e.g. 'example.com/MyName')")
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME.match(name):
        return "name part " + _QUALIFIED_NAME_RULE
    return None


def label_value_error(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _LABEL_VALUE.match(value):
        return ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
                "or '.', and must start and end with an alphanumeric character")
    return None


def port_name_errors(names: list[str], path: str, *, required: bool = False) -> list[FieldError]:
    """Kubernetes' checks of the names in a list of ports (a Service's spec.ports, an EndpointSlice's
    ports; `path` the list's): each one given is a DNS-1123 label, and no two are alike (two unnamed
    ports are alike); `required`: every port has one (a Service of more than one port)."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        where = f"{path}[{i}].name"
        if required and not name:
            errors.append(FieldError(where, "Required value"))
            continue
        if name and (problem := dns1123_label_error(name)):
            errors.append(FieldError(where, invalid_value(name, problem.split(": ", 1)[-1])))
        if name in seen:
            errors.append(FieldError(where, f"Duplicate value: {quoted(name)}"))
        seen.add(name)
    return errors


def invalid_value(value: str, problem: str) -> str:
    """Kubernetes' `Invalid value: "<value>": <problem>`, the value cut to a readable length."""
    return f"Invalid value: {quoted(value)}: {problem}"


def quoted(text: str) -> str:
    """Go's %q, near enough: control characters escaped, printable text kept (cut to 100 characters)."""
    text = json.dumps(_cut(text), ensure_ascii=False)
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def validate_metadata(obj: Message) -> list[FieldError]:
    """The checks on metadata every kind shares (Kubernetes' ValidateObjectMeta)."""
    errors: list[FieldError] = []
    meta = obj.metadata
    # Nodes and pods are named like DNS subdomains in Kubernetes.
    if not meta.name and meta.generate_name:
        pass  # the server fills the name
    elif problem := dns1123_subdomain_error(meta.name):
        errors.append(FieldError("metadata.name", problem))
    if meta.namespace and (problem := dns1123_label_error(meta.namespace)):
        errors.append(FieldError("metadata.namespace", problem))
    for key, value in meta.labels.items():
        if problem := qualified_name_error(key):
            errors.append(FieldError("metadata.labels", invalid_value(key, problem)))
        elif problem := label_value_error(value):
            errors.append(FieldError(f"metadata.labels.{key}", invalid_value(value, problem)))
    total = 0
    for key, value in meta.annotations.items():
        if problem := qualified_name_error(key.lower()):
            errors.append(FieldError("metadata.annotations", invalid_value(key, problem)))
        total += len(key.encode()) + len(value.encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errors.append(FieldError("metadata.annotations",
                                 f"Too long: must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes "
                                 f"(keys and values together are {total} bytes)"))
    return errors


MAX_DURATION_SECONDS = 10**10   # ~317 years
"""Skiff's bound on a duration in seconds (a grace period; Kubernetes only asks
>= 0): now + this must still be a valid protobuf Timestamp (year 9999), or the
deletion that adds it fails later."""

REQUEST_LIMIT_BYTES = 1536 * 1024
"""etcd's default --max-request-bytes (1.5 MiB): no write may exceed it, and
Kubernetes refuses an object that would not fit."""
TXN_OVERHEAD_BYTES = 4096   # the key (twice: guard and put), the guard, the lease, framing


def object_size_error(obj: Message, *, request_limit: int = REQUEST_LIMIT_BYTES) -> FieldError | None:
    """An object that would not fit in one store write, named by its largest
    part so a user sees which field to shrink. The store checks the same
    before writing; validation checks it so a client-side dry run says so too."""
    size = obj.ByteSize()
    limit = request_limit - TXN_OVERHEAD_BYTES
    if size <= limit:
        return None
    parts = [(field.name, value) for field, value in obj.ListFields() if field.name != "metadata"]
    if obj.HasField("metadata"):
        parts += [(f"metadata.{field.name}", value) for field, value in obj.metadata.ListFields()]
    sizes = sorted(((_field_size(value), name) for name, value in parts), reverse=True)
    largest = f"; the largest part is {sizes[0][1]} ({sizes[0][0]} bytes)" if sizes else ""
    path = _json_path(obj, sizes[0][1]) if sizes else ""
    return FieldError(path, f"too large: {size} bytes serialized, the limit is {limit} bytes "
                            f"(the store's request limit of {request_limit} bytes, as etcd's "
                            f"--max-request-bytes){largest}")


def _field_size(value: object) -> int:
    if isinstance(value, Message):
        return value.ByteSize()
    if isinstance(value, (str, bytes)):
        return len(value)
    try:  # repeated fields and maps
        return sum(_field_size(v) for v in value) + sum(  # type: ignore[union-attr]
            _field_size(v) for v in getattr(value, "values", lambda: ())())
    except TypeError:
        return 8


def _json_path(obj: Message, proto_path: str) -> str:
    """"metadata.annotations" for a proto path, with the fields' JSON names."""
    out, desc = [], obj.DESCRIPTOR
    for part in proto_path.split("."):
        field = desc.fields_by_name[part]
        out.append(field.json_name)
        desc = field.message_type
    return ".".join(out)


_TIMESTAMP = "google.protobuf.Timestamp"
_MIN_SECONDS, _MAX_SECONDS = -62135596800, 253402300799   # 0001-01-01 .. 9999-12-31T23:59:59Z


def timestamp_errors(obj: Message, path: str = "") -> list[FieldError]:
    """Timestamps a protobuf Timestamp cannot hold (a raw API call can send
    any seconds): stored, every later reader of the object failed on them."""
    errors: list[FieldError] = []
    for field, value in obj.ListFields():
        if field.type != field.TYPE_MESSAGE or not _has_timestamps(field.message_type):
            continue
        where = f"{path}.{field.json_name}" if path else field.json_name
        items = list(value) if field.is_repeated else [value]
        if field.message_type.GetOptions().map_entry:
            continue   # no map of Skiff's holds timestamps
        for i, item in enumerate(items):
            at = f"{where}[{i}]" if field.is_repeated else where
            if field.message_type.full_name == _TIMESTAMP:
                if not (_MIN_SECONDS <= item.seconds <= _MAX_SECONDS and 0 <= item.nanos <= 999_999_999):
                    errors.append(FieldError(at, f"Invalid value: seconds {item.seconds}, nanos {item.nanos}: "
                                                 f"not a time between 0001-01-01 and 9999-12-31"))
            else:
                errors += timestamp_errors(item, at)
    return errors


@functools.lru_cache(maxsize=None)
def _has_timestamps(desc: Any) -> bool:
    if desc.full_name == _TIMESTAMP:
        return True
    return any(f.message_type is not None and f.message_type is not desc and _has_timestamps(f.message_type)
               for f in desc.fields)


def validate(obj: Message) -> list[FieldError]:
    """Every problem in `obj` by its kind's rules: `skiff.api.kinds.validate`,
    kept under this name for its callers."""
    from skiff.api import kinds  # the kind files import this module: resolve at call time
    return kinds.validate(obj)
