"""Kubernetes' protobuf request bodies, for what kubectl's typed `create`
commands send that way (`kubectl create namespace|configmap|secret|
deployment|job|cronjob|service`, and `kubectl drain`'s Eviction): decoded into the JSON shape, then read as any JSON body.

The body is the magic `k8s\\0` and a runtime.Unknown {typeMeta{apiVersion,
kind}, raw}; raw is the object in Kubernetes' own field numbering (its
generated.proto), which is not Skiff's, so each kind's numbering is listed
here, as far as those commands fill it in (a field not listed is left out, as
an unknown one). A kind not listed answers 415, which names `kubectl apply -f`.
"""
from __future__ import annotations

import base64
from typing import Any, Callable

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

# field number -> (JSON name, how to read it); "map" fields hold entries {1: key, 2: value}.
Schema = dict[int, tuple[str, Any]]
_STRING, _BYTES, _BOOL, _INT = "string", "bytes", "bool", "int"
_INT_OR_STRING = "intstr"   # intstr.IntOrString {1: type (0 int, 1 string), 2: intVal, 3: strVal}
_OBJECT_META: Schema = {1: ("name", _STRING), 2: ("generateName", _STRING), 3: ("namespace", _STRING),
                        11: ("labels", ("map", _STRING)), 12: ("annotations", ("map", _STRING)),
                        14: ("finalizers", ("list", _STRING))}
_LABEL_SELECTOR: Schema = {1: ("matchLabels", ("map", _STRING))}
_CONTAINER: Schema = {1: ("name", _STRING), 2: ("image", _STRING), 3: ("command", ("list", _STRING)),
                      4: ("args", ("list", _STRING)), 5: ("workingDir", _STRING),
                      6: ("ports", ("list", {1: ("name", _STRING), 2: ("hostPort", _INT),
                                             3: ("containerPort", _INT), 4: ("protocol", _STRING)})),
                      7: ("env", ("list", {1: ("name", _STRING), 2: ("value", _STRING)}))}
_POD_TEMPLATE: Schema = {1: ("metadata", _OBJECT_META),
                         2: ("spec", {2: ("containers", ("list", _CONTAINER)), 3: ("restartPolicy", _STRING)})}
_JOB_SPEC: Schema = {1: ("parallelism", _INT), 2: ("completions", _INT), 6: ("template", _POD_TEMPLATE),
                     7: ("backoffLimit", _INT)}
KINDS: dict[str, Schema] = {
    "Namespace": {1: ("metadata", _OBJECT_META), 2: ("spec", {1: ("finalizers", ("list", _STRING))})},
    "ConfigMap": {1: ("metadata", _OBJECT_META), 2: ("data", ("map", _STRING)), 3: ("binaryData", ("map", _BYTES)),
                  4: ("immutable", _BOOL)},
    # What `kubectl create deployment NAME --image I [--replicas N] [--port P] [-- CMD]` sends.
    "Deployment": {1: ("metadata", _OBJECT_META),
                   2: ("spec", {1: ("replicas", _INT), 2: ("selector", _LABEL_SELECTOR), 3: ("template", _POD_TEMPLATE)})},
    "Job": {1: ("metadata", _OBJECT_META), 2: ("spec", _JOB_SPEC)},
    "CronJob": {1: ("metadata", _OBJECT_META),
                2: ("spec", {1: ("schedule", _STRING),
                             5: ("jobTemplate", {1: ("metadata", _OBJECT_META), 2: ("spec", _JOB_SPEC)})})},
    # What `kubectl create service clusterip|nodeport|loadbalancer|externalname NAME --tcp=P:T` sends.
    "Service": {1: ("metadata", _OBJECT_META),
                2: ("spec", {1: ("ports", ("list", {1: ("name", _STRING), 2: ("protocol", _STRING), 3: ("port", _INT),
                                                    4: ("targetPort", _INT_OR_STRING), 5: ("nodePort", _INT)})),
                             2: ("selector", ("map", _STRING)), 3: ("clusterIP", _STRING), 4: ("type", _STRING),
                             7: ("sessionAffinity", _STRING), 10: ("externalName", _STRING)})},
    "Secret": {1: ("metadata", _OBJECT_META), 2: ("data", ("map", _BYTES)), 3: ("type", _STRING),
               4: ("stringData", ("map", _STRING)), 5: ("immutable", _BOOL)},
    # What `kubectl auth can-i` posts (authorization.k8s.io/v1; decision 32).
    "SelfSubjectAccessReview": {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("resourceAttributes", {1: ("namespace", _STRING), 2: ("verb", _STRING), 3: ("group", _STRING),
                                                4: ("version", _STRING), 5: ("resource", _STRING),
                                                6: ("subresource", _STRING), 7: ("name", _STRING)}),
                     2: ("nonResourceAttributes", {1: ("path", _STRING), 2: ("verb", _STRING)})})},
    # What `kubectl create token NAME [--audience A] [--duration D] [--bound-object-kind K ...]` posts
    # (authentication.k8s.io/v1 TokenRequest; decision 35).
    "TokenRequest": {1: ("metadata", _OBJECT_META),
                     2: ("spec", {1: ("audiences", ("list", _STRING)), 4: ("expirationSeconds", _INT),
                                  3: ("boundObjectRef", {1: ("kind", _STRING), 2: ("apiVersion", _STRING),
                                                         3: ("name", _STRING), 4: ("uid", _STRING)})})},
    # What `kubectl certificate approve|deny` puts to certificatesigningrequests/NAME/approval (certificates.k8s.io/v1;
    # decision 36): the object with one more condition (its times are left out: the server sets them).
    "CertificateSigningRequest": {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("request", _BYTES), 2: ("username", _STRING), 3: ("uid", _STRING),
                     4: ("groups", ("list", _STRING)), 5: ("usages", ("list", _STRING)), 7: ("signerName", _STRING),
                     8: ("expirationSeconds", _INT)}),
        3: ("status", {1: ("conditions", ("list", {1: ("type", _STRING), 2: ("reason", _STRING),
                                                   3: ("message", _STRING), 6: ("status", _STRING)})),
                       2: ("certificate", _BYTES)})},
    # What `kubectl drain` posts to pods/NAME/eviction (policy/v1 Eviction with its DeleteOptions).
    "Eviction": {1: ("metadata", _OBJECT_META),
                 2: ("deleteOptions", {1: ("gracePeriodSeconds", _INT),
                                       2: ("preconditions", {1: ("uid", _STRING), 2: ("resourceVersion", _STRING)}),
                                       5: ("dryRun", ("list", _STRING))})},
}


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            out.append((number, data[pos:pos + length]))
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == _STRING and isinstance(value, bytes):
        return value.decode()
    if kind == _BYTES and isinstance(value, bytes):
        return base64.b64encode(value).decode()   # JSON's spelling of bytes
    if kind == _BOOL:
        return bool(value)
    if kind == _INT:
        return int(value) if isinstance(value, int) else 0
    raise ProtobufError(f"unexpected value for a {kind}")


def _message(data: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in schema:
            continue   # a field Skiff's kinds do not have: left out, as an unknown JSON field would be dropped
        name, how = schema[number]
        read: Callable[..., Any]
        if isinstance(how, dict):
            out[name] = _message(value, how) if isinstance(value, bytes) else {}
        elif how == _INT_OR_STRING:
            parts = dict(_fields(value)) if isinstance(value, bytes) else {}
            out[name] = _scalar(_STRING, parts.get(3, b"")) if parts.get(1) == 1 else _scalar(_INT, parts.get(2, 0))
        elif isinstance(how, tuple) and how[0] == "map":
            entry = dict(_fields(value)) if isinstance(value, bytes) else {}
            out.setdefault(name, {})[_scalar(_STRING, entry.get(1, b""))] = _scalar(how[1], entry.get(2, b""))
        elif isinstance(how, tuple) and how[0] == "list" and isinstance(how[1], dict):
            out.setdefault(name, []).append(_message(value, how[1]) if isinstance(value, bytes) else {})
        elif isinstance(how, tuple) and how[0] == "list":
            out.setdefault(name, []).append(_scalar(how[1], value))
        else:
            out[name] = _scalar(how, value)
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object of a protobuf body; ProtobufError for a kind not listed here."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body (no k8s magic)")
    unknown = dict(_fields(body[len(MAGIC):]))
    type_meta = dict(_fields(unknown.get(1, b""))) if isinstance(unknown.get(1), bytes) else {}
    api_version = _scalar(_STRING, type_meta.get(1, b""))
    kind = _scalar(_STRING, type_meta.get(2, b""))
    schema = KINDS.get(kind)
    if schema is None:
        raise ProtobufError(f"{kind or 'this kind'} in protobuf")
    raw = unknown.get(2, b"")
    return {"apiVersion": api_version, "kind": kind, **_message(raw if isinstance(raw, bytes) else b"", schema)}
