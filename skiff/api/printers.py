"""How API objects are shown: kubectl-like tables, Kubernetes-style JSON/YAML
and `kind/name` lines.

Used by `skiff get` (and `describe` for ages and statuses). Objects are turned
into the dicts Kubernetes would print (camelCase names, apiVersion and kind
filled in, int64 as numbers rather than protobuf-JSON strings), so tools that
read `kubectl get -o json` read ours. A table's columns are its kind's
(`Strategy.columns`/`row`, kubectl's names).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Sequence

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from skiff.api import humanize, kinds
from skiff.api.kinds import pod

# Fields Kubernetes prints even at their zero value, which protobuf's JSON
# mapping would leave out: a user (or a script) reads `exitCode: 0` as success.
_ALWAYS = {
    "skiff.v1.ContainerStateTerminated": {"exitCode": 0},
    "skiff.v1.ContainerStatus": {"ready": False, "restartCount": 0},
}
# IntOrString fields (strings in the proto) that Kubernetes writes as a number when they hold one:
# kubectl's typed clients tell 8080 from "8080" (a port named "8080").
_INT_OR_STRING_NUMBERS = {("skiff.v1.ServicePort", "targetPort"), ("skiff.v1.NetworkPolicyPort", "port"),
                          ("skiff.v1.PodDisruptionBudgetSpec", "minAvailable"),
                          ("skiff.v1.PodDisruptionBudgetSpec", "maxUnavailable")}
_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
          FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}


# ---------------------------------------------------------------- JSON / YAML

def to_dict(obj: Message) -> dict[str, Any]:
    """The object as Kubernetes prints it."""
    data = json_format.MessageToDict(obj)
    _as_kubernetes(data, obj.DESCRIPTOR)
    kind = kinds.kind_of(obj)
    # apiVersion and kind first, as kubectl orders them.
    return {"apiVersion": kind.api_version, "kind": kind.name,
            **{k: v for k, v in data.items() if k not in ("apiVersion", "kind")}}


def to_list_dict(objs: Sequence[Message], *, resource_version: str = "") -> dict[str, Any]:
    """A Kubernetes-style List of the objects."""
    return {"apiVersion": "v1", "kind": "List", "items": [to_dict(o) for o in objs],
            "metadata": {"resourceVersion": resource_version}}


def dump_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=4) + "\n"


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=False)


def _as_kubernetes(data: Any, desc: Descriptor) -> None:
    """protobuf's JSON mapping writes int64 as strings and omits zero values;
    Kubernetes writes numbers and prints a few zeros that carry meaning."""
    if not isinstance(data, dict):
        return
    for key, default in _ALWAYS.get(desc.full_name, {}).items():
        data.setdefault(key, default)
    for f in desc.fields:
        if f.json_name not in data:
            continue
        value = data[f.json_name]
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            vf = f.message_type.fields_by_name["value"]
            if vf.type in _INT64:
                data[f.json_name] = {k: int(v) for k, v in value.items()}
            elif vf.message_type is not None:
                for v in value.values():
                    _as_kubernetes(v, vf.message_type)
        elif f.type in _INT64:
            data[f.json_name] = [int(v) for v in value] if f.is_repeated else int(value)
        elif (desc.full_name, f.json_name) in _INT_OR_STRING_NUMBERS and value.isdigit():
            data[f.json_name] = int(value)
        elif f.message_type is not None and f.message_type.full_name != "google.protobuf.Timestamp":
            for item in (value if f.is_repeated else [value]):
                _as_kubernetes(item, f.message_type)


# ---------------------------------------------------------------- columns

# Re-exported: callers (describe, get) and tests read them from here.
human_age = humanize.age
human_duration = humanize.duration
format_table = humanize.format_table
pod_status = pod.pod_status


# ---------------------------------------------------------------- tables

def name_of(obj: Message) -> str:
    """`pod/hello`, as `-o name` and apply print it."""
    return f"{kinds.kind_of(obj).name.lower()}/{obj.metadata.name}"


def table(objs: Sequence[Message], *, kind: kinds.Kind, wide: bool = False,
          with_namespace: bool = False, now: datetime | None = None, headers: bool = True) -> str:
    """A kubectl-like table of objects of one kind."""
    now = now or datetime.now(timezone.utc)
    header = kind.strategy.columns(wide=wide)
    rows = [kind.strategy.row(o, wide=wide, now=now) for o in objs]
    if with_namespace and kind.namespaced:
        header = ["NAMESPACE", *header]
        rows = [[o.metadata.namespace, *r] for o, r in zip(objs, rows)]
    return format_table(([header] if headers else []) + rows)
