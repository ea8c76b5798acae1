"""Secret (v1): like a ConfigMap, for values nobody should see by accident.

`data` holds bytes (base64 in YAML/JSON, as Kubernetes); `stringData` is a
write-only convenience folded into `data` on write and then cleared (its keys
win). `type` defaults to Opaque and cannot change; `immutable` as for a
ConfigMap. `describe` prints each key's size, never its value.
"""
from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import types_pb2
from skiff.api import describing, humanize
from skiff.api.kinds.configmap import immutable_errors, key_errors, size_errors
from skiff.api.kinds.strategy import DescribeContext, FieldGetter, Kind, Strategy, getter
from skiff.api.validation import FieldError

DEFAULT_TYPE = "Opaque"


class SecretStrategy(Strategy):
    immutable_fields = ("type",)

    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        obj.type = obj.type or DEFAULT_TYPE
        for key, value in obj.string_data.items():
            obj.data[key] = value.encode()
        obj.ClearField("string_data")
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        errors = super().validate(obj) + key_errors(obj.data, "data") + key_errors(obj.string_data, "stringData")
        merged = {**dict(obj.data), **{k: v.encode() for k, v in obj.string_data.items()}}
        return errors + size_errors(sum(len(v) for v in merged.values()), "data")

    def validate_update(self, old: Message, new: Message) -> list[FieldError]:
        return immutable_errors(old, new, (("data", "data"),)) + super().validate_update(old, new)

    @property
    def field_selectors(self) -> dict[str, FieldGetter]:
        return {**super().field_selectors, "type": getter("type")}

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "TYPE", "DATA", "AGE"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        return [obj.metadata.name, obj.type or DEFAULT_TYPE, str(len(obj.data)),
                humanize.age(obj.metadata.creation_timestamp, now=now)]

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        describing.header(text, obj)
        text.line("")
        text.kv(0, [("Type", obj.type or DEFAULT_TYPE)])
        text.line("")
        text.line("Data")
        text.line("====")
        if obj.data:  # sizes only, never the values (as kubectl)
            text.kv(0, [(key, f"{len(value)} bytes") for key, value in sorted(obj.data.items())])
        return str(text)


KIND = Kind("Secret", "v1", "secrets", "secret", types_pb2.Secret, True, ("secret",), strategy=SecretStrategy())
