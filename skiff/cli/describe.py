"""`skiff describe pod|node NAME`: one object in prose, kubectl-like, with its events.

Reads the object, the events whose involvedObject is it (filtered here, so
it works whatever field selectors the server supports) and, for a node, the
pods bound to it with the resources they request.
"""
from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

from google.protobuf.message import Message

from skiff.api import printers
from skiff.api.quantity import QuantityError, cpu_millis, format_bytes, format_millis, memory_bytes
from skiff.cli._common import CliError, add_namespace_flags, call_api, kind_arg, namespace_of, scope
from skiff.client import ApiClient


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "describe", help="show one pod or node in detail, with its events",
        description="Show a pod (containers with state, exit code, limits; conditions) or a node "
                    "(conditions, capacity, its pods), followed by the events about it.")
    p.add_argument("resource", metavar="RESOURCE", help="pod or node")
    p.add_argument("name", metavar="NAME")
    add_namespace_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kind = kind_arg(args.resource)
    if kind.name not in ("Pod", "Node"):
        raise CliError(f"describe supports pods and nodes, not {args.resource!r}")
    namespace = scope(kind, namespace_of(args))

    async def describe(client: ApiClient) -> int:
        obj = await client.get(kind.name, args.name, namespace)
        events, _ = await client.list("Event", namespace if kind.namespaced else "")
        events = [e for e in events if e.involved_object.kind == kind.name
                  and e.involved_object.name == args.name
                  and (not kind.namespaced or e.involved_object.namespace in ("", namespace))]
        now = datetime.now(timezone.utc)
        if kind.name == "Pod":
            text = describe_pod(obj, events=events, now=now)
        else:
            pods, _ = await client.list("Pod", "")
            text = describe_node(obj, pods=[p for p in pods if p.spec.node_name == args.name],
                                 events=events, now=now)
        print(text, end="")
        return 0

    return call_api(args, describe)


_CW = 15  # the key width of a container's block in describe pod


class _Text:
    """Lines of `Key:  value` with values aligned per indentation block."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def kv(self, indent: int, pairs: list[tuple[str, Any]], *, width: int = 0) -> None:
        width = max([len(k) for k, _ in pairs] + [width - 1]) + 2
        for key, value in pairs:
            self.lines.append(" " * indent + f"{key}:".ljust(width + 1) + ("" if value is None else str(value)))

    def line(self, text: str) -> None:
        self.lines.append(text)

    def __str__(self) -> str:
        return "\n".join(line.rstrip() for line in self.lines) + "\n"


def _ts(ts: Any) -> str:
    if not ts.seconds and not ts.nanos:
        return "<unset>"
    return ts.ToDatetime(tzinfo=timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")


def _map(m: Any) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted(m.items())) or "<none>"


def _multiline(text: _Text, key: str, value: str, *, width: int = 18) -> None:
    first, *rest = value.splitlines() or [""]
    text.line(f"{key}:".ljust(width) + first)
    for line in rest:
        text.line(" " * width + line)


def _state(text: _Text, title: str, state: Any) -> None:
    if state.HasField("running"):
        text.kv(4, [(title, "Running"), ("  Started", _ts(state.running.started_at))], width=_CW)
    elif state.HasField("terminated"):
        t = state.terminated
        pairs = [(title, "Terminated"), ("  Reason", t.reason or "<none>"), ("  Exit Code", t.exit_code)]
        if t.signal:
            pairs.append(("  Signal", t.signal))
        if t.message:
            pairs.append(("  Message", t.message))
        pairs += [("  Started", _ts(t.started_at)), ("  Finished", _ts(t.finished_at))]
        text.kv(4, pairs, width=_CW)
    elif state.HasField("waiting"):
        pairs = [(title, "Waiting"), ("  Reason", state.waiting.reason or "<none>")]
        if state.waiting.message:
            pairs.append(("  Message", state.waiting.message))
        text.kv(4, pairs, width=_CW)
    else:
        text.kv(4, [(title, "Waiting")], width=_CW)


def describe_pod(pod: Message, *, events: list[Message], now: datetime) -> str:
    text = _Text()
    meta, spec, status = pod.metadata, pod.spec, pod.status
    node = spec.node_name + (f"/{status.host_ip}" if status.host_ip else "") if spec.node_name else "<none>"
    _multiline(text, "Name", meta.name)
    _multiline(text, "Namespace", meta.namespace or "default")
    _multiline(text, "Node", node)
    _multiline(text, "Start Time", _ts(status.start_time) if status.HasField("start_time") else "<none>")
    _multiline(text, "Labels", _map(meta.labels))
    _multiline(text, "Annotations", _map(meta.annotations))
    _multiline(text, "Status", printers.pod_status(pod) if meta.HasField("deletion_timestamp")
               else status.phase or "Pending")
    if status.reason or status.message:
        _multiline(text, "Reason", status.reason)
        _multiline(text, "Message", status.message)
    _multiline(text, "IP", status.pod_ip or "<none>")
    _multiline(text, "Restart Policy", spec.restart_policy or "Always")
    statuses = {c.name: c for c in status.container_statuses}
    text.line("Containers:")
    for c in spec.containers:
        text.line(f"  {c.name}:")
        cs = statuses.get(c.name)
        text.kv(4, width=_CW, pairs=[("Container ID", (cs.container_id if cs else "") or "<none>"), ("Image", c.image),
                    ("Image ID", (cs.image_id if cs else "") or "<none>"),
                    ("Ports", ", ".join(_port(p) for p in c.ports) or "<none>")])
        for title, items in (("Command", c.command), ("Args", c.args)):
            if items:
                text.line(f"    {title}:")
                text.lines.extend(f"      {line}" for item in items for line in (item.splitlines() or [""]))
        if cs is not None:
            _state(text, "State", cs.state)
            if cs.HasField("last_state") and cs.last_state.ListFields():
                _state(text, "Last State", cs.last_state)
            text.kv(4, [("Ready", str(cs.ready)), ("Restart Count", cs.restart_count)], width=_CW)
        else:
            text.kv(4, [("State", "Waiting"), ("Ready", "False"), ("Restart Count", 0)], width=_CW)
        for title, values in (("Limits", c.resources.limits), ("Requests", c.resources.requests)):
            if values:
                text.line(f"    {title}:")
                text.kv(6, sorted(values.items()))
        if c.env:
            text.line("    Environment:")
            text.kv(6, [(e.name, e.value) for e in c.env])
        else:
            text.kv(4, [("Environment", "<none>")], width=_CW)
    if status.conditions:
        text.line("Conditions:")
        rows = [["Type", "Status", "Reason"]] + [[c.type, c.status, c.reason] for c in status.conditions]
        text.lines.extend("  " + line for line in printers.format_table(rows).splitlines())
    _events(text, events, now=now)
    return str(text)


def _port(p: Any) -> str:
    base = f"{p.container_port}/{p.protocol or 'TCP'}"
    return f"{base} (host {p.host_port})" if p.host_port else base


def describe_node(node: Message, *, pods: list[Message], events: list[Message], now: datetime) -> str:
    text = _Text()
    meta, status = node.metadata, node.status
    _multiline(text, "Name", meta.name)
    _multiline(text, "Roles", printers.node_roles(node))
    _multiline(text, "Labels", _map(meta.labels))
    _multiline(text, "Annotations", _map(meta.annotations))
    _multiline(text, "CreationTimestamp", _ts(meta.creation_timestamp))
    _multiline(text, "Unschedulable", str(node.spec.unschedulable).lower())
    _multiline(text, "PodCIDR", node.spec.pod_cidr or "<none>")
    text.line("Conditions:")
    rows = [["Type", "Status", "LastHeartbeatTime", "Reason", "Message"]]
    rows += [[c.type, c.status, _ts(c.last_heartbeat_time), c.reason, c.message] for c in status.conditions]
    text.lines.extend("  " + line for line in printers.format_table(rows).splitlines())
    text.line("Addresses:")
    if status.addresses:
        text.kv(2, [(a.type, a.address) for a in status.addresses])
    for title, values in (("Capacity", status.capacity), ("Allocatable", status.allocatable)):
        if values:
            text.line(f"{title}:")
            text.kv(2, sorted(values.items()))
    info = status.node_info
    text.line("System Info:")
    text.kv(2, [("Machine ID", info.machine_id), ("Kernel Version", info.kernel_version),
                ("OS Image", info.os_image), ("Operating System", info.operating_system),
                ("Architecture", info.architecture), ("Container Runtime Version", info.container_runtime_version),
                ("Kubelet Version", info.kubelet_version), ("Cgroup Version", info.cgroup_version)])
    text.line(f"Non-terminated Pods:  ({len(pods)} in total)")
    rows = [["Namespace", "Name", "CPU Requests", "CPU Limits", "Memory Requests", "Memory Limits", "Age"]]
    for p in pods:
        rows.append([p.metadata.namespace, p.metadata.name, *_pod_resources(p),
                     printers.human_age(p.metadata.creation_timestamp, now=now)])
    text.lines.extend("  " + line for line in printers.format_table(rows).splitlines())
    _events(text, events, now=now)
    return str(text)


def _pod_resources(pod: Message) -> list[str]:
    """Summed cpu/memory requests and limits of a pod's containers, as describe node shows them."""
    totals = {"cpu/requests": 0, "cpu/limits": 0, "memory/requests": 0, "memory/limits": 0}
    for c in pod.spec.containers:
        for field in ("requests", "limits"):
            values = getattr(c.resources, field)
            try:
                totals[f"cpu/{field}"] += cpu_millis(values["cpu"]) if "cpu" in values else 0
                totals[f"memory/{field}"] += memory_bytes(values["memory"]) if "memory" in values else 0
            except QuantityError:
                pass  # validated on the way in; an old object must not break describe
    return [format_millis(totals["cpu/requests"]), format_millis(totals["cpu/limits"]),
            format_bytes(totals["memory/requests"]), format_bytes(totals["memory/limits"])]


def _events(text: _Text, events: list[Message], *, now: datetime) -> None:
    if not events:
        text.line("Events:  <none>")
        return
    text.line("Events:")
    rows = [["Type", "Reason", "Age", "From", "Message"], ["----", "------", "----", "----", "-------"]]
    events = sorted(events, key=lambda e: (e.last_timestamp.seconds, e.last_timestamp.nanos))
    for e in events:
        age = printers.human_age(e.last_timestamp if e.last_timestamp.seconds else e.first_timestamp, now=now)
        if e.count > 1:
            age += f" (x{e.count})"
        rows.append([e.type, e.reason, age, e.source.component, e.message])
    text.lines.extend("  " + line for line in printers.format_table(rows).splitlines())
