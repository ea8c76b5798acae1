"""Request bodies and query parameters as Kubernetes' API server reads them.

Objects go to typed messages through the manifest parser (skiff/api/manifest)
as `skiff apply` sends them, so a body is refused for the same reasons and
with the same field paths as a manifest; what is wrong with the request
itself (a body of another kind, a name or namespace that is not the URL's)
is a 400 worded as Kubernetes words it.
"""
from __future__ import annotations

import json
import secrets
import string
from typing import Any

import yaml
from google.protobuf.message import Message

from controlplane.rest import protobuf
from controlplane.rest.discovery import Served
from controlplane.rest.status import ApiError, bad_request, invalid
from skiff.api import convert

_TRUE = ("true", "1", "True")


def parse_body(raw: bytes, content_type: str) -> Any:
    """JSON (or YAML for the yaml and apply-patch types) into plain data."""
    media = content_type.split(";")[0].strip().lower()
    if media == protobuf.MEDIA_TYPE:
        try:
            return protobuf.decode(raw)
        except protobuf.ProtobufError as exc:
            raise ApiError(415, "UnsupportedMediaType",
                           f"Skiff reads {exc} only as JSON or YAML: use `kubectl apply -f` or `kubectl create -f` "
                           f"with a manifest") from None
    if media and not (media.endswith("json") or media.endswith("yaml") or media == "*/*"):
        # Protobuf (kubectl create sends it for built-in types): 415 makes client-go send JSON instead.
        raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                                                    f"accepted media types include: application/json, application/yaml")
    if not raw.strip():
        raise bad_request("the body of the request is empty")
    try:
        if "yaml" in content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"the body of the request was in an unknown format: {exc}") from None


def flag(query: Any, name: str) -> bool:
    return query.get(name, "") in _TRUE


def integer(query: Any, name: str) -> int | None:
    text = query.get(name)
    if text in (None, ""):
        return None
    try:
        return int(text)
    except ValueError:
        raise bad_request(f"{name}: invalid value {text!r}: must be an integer") from None


def to_object(data: Any, served: Served, *, namespace: str, name: str | None = None) -> Message:
    """The typed object for a request body sent to `served` in `namespace`
    (and, for PUT/PATCH, to the object `name`)."""
    if not isinstance(data, dict):
        raise bad_request("the body of the request must be a JSON object")
    kind = served.kind
    data = dict(data)
    given_kind, given_version = data.setdefault("kind", kind.name), data.setdefault("apiVersion", kind.api_version)
    if given_kind != kind.name or given_version != kind.api_version:
        raise bad_request(f"the object in the body ({given_version}, Kind={given_kind}) does not match "
                          f"the resource {served.qualified} ({kind.api_version}, Kind={kind.name})")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise invalid(kind.name, "", [("metadata", "must be an object")])
    metadata = data["metadata"] = dict(metadata)
    if kind.namespaced:
        if metadata.get("namespace") and metadata["namespace"] != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        metadata["namespace"] = namespace
    if name is not None and metadata.get("name", name) != name:
        raise bad_request(f"the name of the object ({metadata['name']}) does not match the name on the URL ({name})")
    if name is not None:
        metadata["name"] = name
    if not metadata.get("name") and metadata.get("generateName"):
        suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
        metadata["name"] = metadata["generateName"] + suffix
    try:
        return convert.to_object(data, source="request body")
    except convert.ConversionError as exc:
        raise invalid(kind.name, str(metadata.get("name", "")), exc.errors or [("", "not a valid object")]) from None


def encode(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


