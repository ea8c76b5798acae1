"""The API's schema for people: what `skiff explain` prints.

The structure (fields, their Kubernetes JSON names and types) comes from the
protobuf descriptors; the descriptions are the comments of the .proto files
shipped beside the generated code (proto/skiff/v1/*.proto, package data):
the comment lines right above a message or a field, and a field's comment at
the end of its line. Field types are named as kubectl names them
(`<string>`, `<integer>`, `<[]Container>`, `<map[string]string>`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from proto.skiff.v1 import types_pb2

_PROTO_DIR = Path(types_pb2.__file__).parent
_MESSAGE = re.compile(r"^\s*(message|enum|oneof)\s+(\w+)\s*\{")
_FIELD = re.compile(r"^\s*(?:optional\s+|repeated\s+)?(?:map<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*\d+[^;]*;\s*(?://\s?(.*))?$")

# The two fields every object has that are not in its message (the envelope sets them).
TYPE_META = {
    "apiVersion": "APIVersion defines the versioned schema of this representation of an object.",
    "kind": "Kind is a string value representing the REST resource this object represents.",
}


class SchemaError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@lru_cache(maxsize=1)
def comments() -> dict[str, str]:
    """"skiff.v1.Pod" and "skiff.v1.Pod.spec" (proto field names) -> their comment text."""
    out: dict[str, str] = {}
    for path in sorted(_PROTO_DIR.glob("*.proto")):
        package = "skiff.v1"
        stack: list[str | None] = []   # message names; None for a block that is not a message
        pending: list[str] = []
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("package "):
                package = stripped[len("package "):].rstrip(";").strip()
            if stripped.startswith("//"):
                pending.append(stripped[2:].strip())
                continue
            m = _MESSAGE.match(line)
            if m:
                if m.group(1) == "message":
                    name = ".".join([package, *[s for s in stack if s], m.group(2)])
                    if pending:
                        out[name] = " ".join(pending)
                    stack.append(m.group(2))
                else:
                    stack.append(None)
                if stripped.endswith("}"):   # `message Empty {}`
                    stack.pop()
                pending = []
                continue
            f = _FIELD.match(line)
            if f and stack and stack[-1] is not None:
                owner = ".".join([package, *[s for s in stack if s]])
                text = " ".join(pending + ([f.group(2).strip()] if f.group(2) else []))
                if text:
                    out[f"{owner}.{f.group(1)}"] = text
            if stripped.startswith("}") and stack:
                stack.pop()
            pending = []
    return out


def type_name(field: FieldDescriptor) -> str:
    """kubectl's name for a field's type."""
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return f"map[string]{_scalar_or_message(field.message_type.fields_by_name['value'])}"
    name = _scalar_or_message(field)
    return f"[]{name}" if field.is_repeated else name


def _scalar_or_message(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        return "string" if field.message_type.full_name == "google.protobuf.Timestamp" else field.message_type.name
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "boolean"
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return "number"
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_ENUM):
        return "string"
    return "integer"


@dataclass(frozen=True)
class Field:
    name: str           # the JSON (Kubernetes) name
    type: str           # as kubectl prints it
    description: str
    message: Descriptor | None   # the nested message (map values and lists of messages included)


def fields_of(desc: Descriptor, *, top_level: bool = False) -> list[Field]:
    notes = comments()
    own = {f.json_name for f in desc.fields}
    out = [Field(k, "string", v, None) for k, v in TYPE_META.items() if k not in own] if top_level else []
    for f in desc.fields:
        nested = f.message_type
        if nested is not None and nested.GetOptions().map_entry:
            nested = nested.fields_by_name["value"].message_type
        if nested is not None and nested.full_name == "google.protobuf.Timestamp":
            nested = None
        text = notes.get(f"{desc.full_name}.{f.name}", "") or (TYPE_META.get(f.json_name, "") if top_level else "")
        out.append(Field(f.json_name, type_name(f), text, nested))
    return sorted(out, key=lambda x: x.name)


def resolve(desc: Descriptor, path: list[str]) -> tuple[Field | None, Descriptor | None]:
    """The field at `path` below the message `desc` (JSON or proto names), and
    the message it holds (None for scalars); (None, desc) for an empty path."""
    field: Field | None = None
    current: Descriptor | None = desc
    for step in path:
        if current is None:
            raise SchemaError(f'field "{step}" does not exist')
        match = next((f for f in fields_of(current, top_level=current is desc)
                      if step in (f.name, _snake(f.name))), None)
        if match is None:
            raise SchemaError(f'field "{step}" does not exist')
        field, current = match, match.message
    return field, current


def description(desc: Descriptor) -> str:
    return comments().get(desc.full_name, "")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
