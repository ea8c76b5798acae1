"""How API objects are shown: kubectl-like tables, Kubernetes-style JSON/YAML
and `kind/name` lines.

Used by `skiff get` (and `describe` for ages and statuses). Objects are turned
into the dicts Kubernetes would print (camelCase names, apiVersion and kind
filled in, int64 as numbers rather than protobuf-JSON strings), so tools that
read `kubectl get -o json` read ours. The STATUS column follows kubectl's
printPod: a waiting or terminated container's reason wins over the phase.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Sequence

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from skiff.api import kinds

# Fields Kubernetes prints even at their zero value, which protobuf's JSON
# mapping would leave out: a user (or a script) reads `exitCode: 0` as success.
_ALWAYS = {
    "skiff.v1.ContainerStateTerminated": {"exitCode": 0},
    "skiff.v1.ContainerStatus": {"ready": False, "restartCount": 0},
}
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
        elif f.message_type is not None and f.message_type.full_name != "google.protobuf.Timestamp":
            for item in (value if f.is_repeated else [value]):
                _as_kubernetes(item, f.message_type)


# ---------------------------------------------------------------- columns

def human_age(ts: Any, *, now: datetime) -> str:
    """kubectl's HumanDuration of now - ts ("5s", "2m30s", "3h", "4d"); <unknown> if unset."""
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return "<unknown>"
    seconds = int((now - ts.ToDatetime(tzinfo=timezone.utc)).total_seconds())
    return human_duration(seconds)


def human_duration(seconds: int) -> str:
    if seconds < -1:
        return "<invalid>"
    seconds = max(seconds, 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m" if seconds % 60 == 0 else f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d" if hours % 24 == 0 else f"{days}d{hours % 24}h"
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        return f"{days // 365}y{days % 365}d"
    return f"{days // 365}y"


def pod_status(pod: Message) -> str:
    """The STATUS column of `kubectl get pods` (kubectl's printPod, abridged)."""
    reason = pod.status.reason or pod.status.phase or "Pending"
    initializing = False
    for i, c in enumerate(pod.status.init_container_statuses):
        state = c.state
        if state.HasField("terminated") and state.terminated.exit_code == 0:
            continue
        initializing = True
        if state.HasField("terminated"):
            t = state.terminated
            reason = "Init:" + (t.reason or (f"Signal:{t.signal}" if t.signal else f"ExitCode:{t.exit_code}"))
        elif state.HasField("waiting") and state.waiting.reason and state.waiting.reason != "PodInitializing":
            reason = "Init:" + state.waiting.reason
        else:
            reason = f"Init:{i}/{len(pod.spec.init_containers)}"
        break
    if not initializing:
        has_running = False
        for c in reversed(pod.status.container_statuses):
            state = c.state
            if state.HasField("waiting") and state.waiting.reason:
                reason = state.waiting.reason
            elif state.HasField("terminated") and state.terminated.reason:
                reason = state.terminated.reason
            elif state.HasField("terminated"):
                t = state.terminated
                reason = f"Signal:{t.signal}" if t.signal else f"ExitCode:{t.exit_code}"
            elif c.ready and state.HasField("running"):
                has_running = True
        # A finished sidecar beside a running container: the pod is still Running.
        if reason == "Completed" and has_running:
            reason = "Running"
    if pod.metadata.HasField("deletion_timestamp"):
        reason = "Terminating"
    return reason


def pod_ready(pod: Message) -> str:
    ready = sum(1 for c in pod.status.container_statuses if c.ready and c.state.HasField("running"))
    return f"{ready}/{len(pod.spec.containers)}"


def pod_restarts(pod: Message) -> int:
    return sum(c.restart_count for c in pod.status.container_statuses)


def node_status(node: Message) -> str:
    status = "Unknown"
    for cond in node.status.conditions:
        if cond.type == "Ready":
            status = {"True": "Ready", "False": "NotReady"}.get(cond.status, "Unknown")
    if node.spec.unschedulable:
        status += ",SchedulingDisabled"
    return status


def node_roles(node: Message) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in node.metadata.labels if k.startswith(prefix))
    return ",".join(r for r in roles if r) or "<none>"


def node_internal_ip(node: Message) -> str:
    for address in node.status.addresses:
        if address.type == "InternalIP":
            return address.address
    return "<none>"


# ---------------------------------------------------------------- tables

def name_of(obj: Message) -> str:
    """`pod/hello`, as `-o name` and apply print it."""
    return f"{kinds.kind_of(obj).name.lower()}/{obj.metadata.name}"


def table(objs: Sequence[Message], *, kind: kinds.Kind, wide: bool = False,
          with_namespace: bool = False, now: datetime | None = None, headers: bool = True) -> str:
    """A kubectl-like table of objects of one kind."""
    now = now or datetime.now(timezone.utc)
    header, rows = _columns(kind.name, objs, wide=wide, now=now)
    if with_namespace and kind.namespaced:
        header = ["NAMESPACE", *header]
        rows = [[o.metadata.namespace, *r] for o, r in zip(objs, rows)]
    return format_table(([header] if headers else []) + rows)


def _columns(kind: str, objs: Sequence[Message], *, wide: bool, now: datetime
             ) -> tuple[list[str], list[list[str]]]:
    if kind == "Pod":
        header = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (["IP", "NODE"] if wide else [])
        rows = [[p.metadata.name, pod_ready(p), pod_status(p), str(pod_restarts(p)),
                 human_age(p.metadata.creation_timestamp, now=now)]
                + ([p.status.pod_ip or "<none>", p.spec.node_name or "<none>"] if wide else [])
                for p in objs]
        return header, rows
    if kind == "Node":
        header = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
        if wide:
            header += ["INTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
        rows = []
        for n in objs:
            info = n.status.node_info
            row = [n.metadata.name, node_status(n), node_roles(n),
                   human_age(n.metadata.creation_timestamp, now=now), info.kubelet_version or "<none>"]
            if wide:
                row += [node_internal_ip(n), info.os_image or "<unknown>", info.kernel_version or "<unknown>",
                        info.container_runtime_version or "<unknown>"]
            rows.append(row)
        return header, rows
    if kind == "Event":
        header = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        rows = [[human_age(_event_time(e), now=now), e.type, e.reason,
                 f"{e.involved_object.kind.lower()}/{e.involved_object.name}", e.message] for e in objs]
        return header, rows
    return ["NAME", "AGE"], [[o.metadata.name, human_age(o.metadata.creation_timestamp, now=now)]
                             for o in objs]


def event_time_key(event: Message) -> tuple[int, int]:
    """Sort key: when the event last happened."""
    ts = _event_time(event)
    return (ts.seconds, ts.nanos) if ts is not None else (0, 0)


def _event_time(event: Message) -> Any:
    for ts in (event.last_timestamp, event.first_timestamp, event.metadata.creation_timestamp):
        if ts.seconds or ts.nanos:
            return ts
    return None


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Columns left-aligned, three spaces apart, as kubectl's tabwriter."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines) + "\n"
