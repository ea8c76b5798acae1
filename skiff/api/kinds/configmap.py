"""ConfigMap (v1): configuration for pods, as text (data) or bytes (binaryData).

Validation as Kubernetes': keys are [-._a-zA-Z0-9]+ (not "." or ".."), at
most 253 characters, in data or binaryData but not both; the values together
at most 1 MiB. An `immutable: true` object keeps its data (and stays
immutable) for good: delete and re-create it to change it.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Iterable

from google.protobuf.message import Message

from proto.skiff.v1 import types_pb2
from skiff.api import describing, humanize
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy
from skiff.api.validation import FieldError

MAX_SIZE = 1024 * 1024  # bytes of values per object, Kubernetes' MaxConfigMapSize / MaxSecretSize
MAX_KEY_LENGTH = 253
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
IMMUTABLE = "field is immutable when `immutable` is set"


def key_errors(keys: Iterable[str], path: str) -> list[FieldError]:
    """Kubernetes' IsConfigMapKey, for ConfigMap and Secret keys."""
    errors = []
    for key in keys:
        where = f"{path}[{key}]"
        if len(key) > MAX_KEY_LENGTH:
            errors.append(FieldError(where, f"must be no more than {MAX_KEY_LENGTH} characters"))
        if not _KEY.match(key):
            errors.append(FieldError(where, f"{key!r}: a valid config key must consist of alphanumeric "
                                            f"characters, '-', '_' or '.' (e.g. 'key.name', or 'KEY_NAME', "
                                            f"or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"))
        elif key in (".", ".."):
            errors.append(FieldError(where, f"{key!r}: must not be '.' or '..'"))
    return errors


def size_errors(size: int, path: str) -> list[FieldError]:
    if size > MAX_SIZE:
        return [FieldError(path, f"too long: {size} bytes; must have at most {MAX_SIZE} bytes")]
    return []


def immutable_errors(old: Message, new: Message, fields: tuple[tuple[str, str], ...]) -> list[FieldError]:
    """Once `immutable: true`, neither the data (`fields`: proto name, JSON path) nor the flag may change."""
    if not (old.HasField("immutable") and old.immutable):
        return []
    errors = [FieldError(path, IMMUTABLE) for name, path in fields if getattr(old, name) != getattr(new, name)]
    if not new.immutable:
        errors.append(FieldError("immutable", IMMUTABLE))
    return errors


def data_count(obj: Message) -> str:
    return str(sum(len(getattr(obj, f)) for f in ("data", "binary_data") if f in type(obj).DESCRIPTOR.fields_by_name))


class ConfigMapStrategy(Strategy):
    def validate(self, obj: Message) -> list[FieldError]:
        errors = super().validate(obj) + key_errors(obj.data, "data") + key_errors(obj.binary_data, "binaryData")
        errors += [FieldError(f"binaryData[{key}]", f"duplicate of key {key!r} present in data")
                   for key in obj.binary_data if key in obj.data]
        size = sum(len(v.encode()) for v in obj.data.values()) + sum(len(v) for v in obj.binary_data.values())
        return errors + size_errors(size, "data")

    def validate_update(self, old: Message, new: Message) -> list[FieldError]:
        return (immutable_errors(old, new, (("data", "data"), ("binary_data", "binaryData")))
                + super().validate_update(old, new))

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "DATA", "AGE"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        return [obj.metadata.name, data_count(obj), humanize.age(obj.metadata.creation_timestamp, now=now)]

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        describing.header(text, obj)
        text.line("")
        text.line("Data")
        text.line("====")
        for key, value in sorted(obj.data.items()):
            text.line(f"{key}:")
            text.line("----")
            text.lines.extend(value.splitlines() or [""])
            text.line("")
        text.line("")
        text.line("BinaryData")
        text.line("====")
        for key, value in sorted(obj.binary_data.items()):
            text.line(f"{key}: {len(value)} bytes")
        text.line("")
        describing.events(text, ctx.events, now=ctx.now)
        return str(text)


KIND = Kind("ConfigMap", "v1", "configmaps", "config_map", types_pb2.ConfigMap, True, ("configmap", "cm"),
            strategy=ConfigMapStrategy())
