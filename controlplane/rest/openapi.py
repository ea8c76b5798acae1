"""OpenAPI v2 and v3 documents generated from the proto descriptors.

What kubectl reads them for: `kubectl explain` (v3: the index at /openapi/v3,
then one document per group-version whose schemas carry
`x-kubernetes-group-version-kind`), and whether the server validates fields
itself (a PATCH operation per kind with the `fieldValidation` query parameter:
then kubectl leaves validation to the server, whose manifest parser refuses
unknown fields as `fieldValidation=Strict` does).

Schemas are named by the proto message ("skiff.v1.PodSpec"; kubectl shows
the last part), field names are the JSON (Kubernetes) names, descriptions the
.proto comments (skiff/api/schema.py), lists keyed as merge.py keys them
carry `x-kubernetes-patch-merge-key`. The PATCH operations do not offer
strategic merge patch in their request bodies, so kubectl's client-side apply
builds its patches from its own compiled Kubernetes types, which know every
patch directive.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from controlplane.rest import discovery
from skiff.api import merge, schema

_INT = {FieldDescriptor.TYPE_INT32: "int32", FieldDescriptor.TYPE_SINT32: "int32", FieldDescriptor.TYPE_UINT32: "int32",
        FieldDescriptor.TYPE_FIXED32: "int32", FieldDescriptor.TYPE_SFIXED32: "int32"}
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")


def _scalar(f: FieldDescriptor) -> dict[str, Any]:
    if f.type == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return {"type": "number", "format": "double"}
    if f.type == FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "format": "byte"}
    if f.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_ENUM):
        return {"type": "string"}
    return {"type": "integer", "format": _INT.get(f.type, "int64")}


class _Builder:
    def __init__(self, ref_prefix: str) -> None:
        self.ref_prefix = ref_prefix
        self.schemas: dict[str, dict[str, Any]] = {}

    def _value(self, f: FieldDescriptor) -> dict[str, Any]:
        m = f.message_type
        if m is None:
            return _scalar(f)
        if m.full_name == "google.protobuf.Timestamp":
            return {"type": "string", "format": "date-time"}
        self.message(m)
        return {"$ref": self.ref_prefix + m.full_name}

    def _field(self, owner: Descriptor, f: FieldDescriptor) -> dict[str, Any]:
        m = f.message_type
        if m is not None and m.GetOptions().map_entry:
            out: dict[str, Any] = {"type": "object", "additionalProperties": self._value(m.fields_by_name["value"])}
        elif f.is_repeated:
            out = {"type": "array", "items": self._value(f)}
            parent = "containers" if owner.name in ("Container", "EphemeralContainer") else owner.name
            key = merge.merge_key((parent, f.json_name))
            if key and f.message_type is not None:
                out["x-kubernetes-patch-merge-key"] = key
                out["x-kubernetes-patch-strategy"] = "merge"
        else:
            value = self._value(f)
            out = {"allOf": [value]} if "$ref" in value else value
        text = schema.comments().get(f"{owner.full_name}.{f.name}", "")
        if text:
            out["description"] = text
        return out

    def message(self, desc: Descriptor, *, gvk: dict[str, str] | None = None) -> None:
        if desc.full_name in self.schemas and gvk is None:
            return
        body: dict[str, Any] = {"type": "object", "properties": {}}
        self.schemas[desc.full_name] = body
        if text := schema.description(desc):
            body["description"] = text
        if gvk is not None:
            body["x-kubernetes-group-version-kind"] = [gvk]
        for name, text in schema.TYPE_META.items() if gvk is not None else ():
            body["properties"][name] = {"type": "string", "description": text}
        for f in desc.fields:
            body["properties"][f.json_name] = self._field(desc, f)


def _gvk(s: discovery.Served) -> dict[str, str]:
    return {"group": s.group, "version": s.version, "kind": s.kind.name}


def _schemas(ref_prefix: str) -> dict[str, dict[str, Any]]:
    b = _Builder(ref_prefix)
    for s in discovery.served():
        b.message(s.kind.message.DESCRIPTOR, gvk=_gvk(s))
    return b.schemas


def _operation(s: discovery.Served, action: str, *, v3: bool) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": f"{action}{s.kind.name}", "x-kubernetes-action": action,
                          "x-kubernetes-group-version-kind": _gvk(s),
                          "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
                                         if v3 else {"name": "fieldValidation", "in": "query", "type": "string"},
                                         {"name": "dryRun", "in": "query", "schema": {"type": "string"}}
                                         if v3 else {"name": "dryRun", "in": "query", "type": "string"}],
                          "responses": {"200": {"description": "OK"}}}
    if action == "patch" and v3:
        op["requestBody"] = {"content": {t: {"schema": {"type": "object"}} for t in _PATCH_TYPES}}
    return op


def _paths(group: str, version: str, *, v3: bool) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for s in discovery.served():
        if (s.group, s.version) != (group, version):
            continue
        root = f"/apis/{s.group_version}" if s.group else f"/api/{s.version}"
        scope = f"{root}/namespaces/{{namespace}}" if s.kind.namespaced else root
        paths[f"{scope}/{s.resource}"] = {"get": _operation(s, "list", v3=v3), "post": _operation(s, "post", v3=v3)}
        paths[f"{scope}/{s.resource}/{{name}}"] = {
            "get": _operation(s, "get", v3=v3), "put": _operation(s, "put", v3=v3),
            "patch": _operation(s, "patch", v3=v3), "delete": _operation(s, "delete", v3=v3)}
    return paths


def _path_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@lru_cache(maxsize=None)
def v3_document(path_key: str) -> bytes | None:
    """The document for "api/v1" or "apis/apps/v1" (None: not served)."""
    for group, versions in discovery.group_versions().items():
        for version in versions:
            if _path_key(group, version) == path_key:
                doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
                       "paths": _paths(group, version, v3=True),
                       "components": {"schemas": _schemas("#/components/schemas/")}}
                return json.dumps(doc).encode()
    return None


@lru_cache(maxsize=1)
def v3_index() -> bytes:
    paths = {}
    for group, versions in discovery.group_versions().items():
        for version in versions:
            key = _path_key(group, version)
            digest = hashlib.sha512(v3_document(key) or b"").hexdigest()[:128].upper()
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return json.dumps({"paths": paths}).encode()


@lru_cache(maxsize=1)
def v2_document() -> bytes:
    paths: dict[str, Any] = {}
    for group, versions in discovery.group_versions().items():
        for version in versions:
            paths.update(_paths(group, version, v3=False))
    doc = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths,
           "definitions": _schemas("#/definitions/")}
    return json.dumps(doc).encode()
