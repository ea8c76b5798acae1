"""Node (v1, cluster-scoped): the kind's rules in one place (see strategy.py).

An agent registers its node with its capacity (a node keeps the status it is
created with); re-registering does not know the pod CIDR the IPAM controller
gave the node, so an update without one keeps it. `describe node` lists the
pods bound to it with their summed requests and limits.
"""
from __future__ import annotations

import ipaddress
from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import types_pb2
from skiff.api import describing, humanize, meta
from skiff.api.kinds.strategy import DescribeContext, FieldGetter, Kind, Strategy, getter
from skiff.api.quantity import QuantityError, cpu_millis, format_bytes, format_millis, memory_bytes, parse_quantity
from skiff.api.validation import FieldError, invalid_value


class NodeStrategy(Strategy):
    def validate(self, obj: Message) -> list[FieldError]:
        errors = super().validate(obj)
        for section in ("capacity", "allocatable"):
            for name, value in getattr(obj.status, section).items():
                try:
                    parse_quantity(value)
                except QuantityError as exc:
                    errors.append(FieldError(f"status.{section}.{name}", str(exc)))
        cidrs = [("spec.podCIDR", obj.spec.pod_cidr)] if obj.spec.pod_cidr else []
        cidrs += [(f"spec.podCIDRs[{i}]", c) for i, c in enumerate(obj.spec.pod_cidrs)]
        for path, cidr in cidrs:
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                errors.append(FieldError(path, invalid_value(cidr, "must be a valid CIDR (e.g. 10.244.1.0/24)")))
        for i, address in enumerate(obj.status.addresses):
            if address.type in ("InternalIP", "ExternalIP") and not _is_ip(address.address):
                errors.append(FieldError(f"status.addresses[{i}].address",
                                         invalid_value(address.address, "must be a valid IP address")))
        port = obj.status.daemon_endpoints.kubelet_endpoint.port
        if not 0 <= port <= 65535:
            errors.append(FieldError("status.daemonEndpoints.kubeletEndpoint.Port",
                                     f"Invalid value: {port}: must be between 0 and 65535, inclusive"))
        return errors

    def prepare_update(self, old: Message, new: Message) -> Message:
        if old.spec.pod_cidr and not new.spec.pod_cidr:
            # An agent re-registering its node does not know the CIDR it was given; it stays.
            new = meta.copy(new)
            new.spec.pod_cidr = old.spec.pod_cidr
            new.spec.pod_cidrs[:] = old.spec.pod_cidrs
        return super().prepare_update(old, new)

    @property
    def field_selectors(self) -> dict[str, FieldGetter]:
        return {**super().field_selectors, "spec.unschedulable": getter("spec", "unschedulable")}

    def columns(self, *, wide: bool) -> list[str]:
        header = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
        return header + (["INTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"] if wide else [])

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        info = obj.status.node_info
        row = [obj.metadata.name, node_status(obj), node_roles(obj),
               humanize.age(obj.metadata.creation_timestamp, now=now), info.kubelet_version or "<none>"]
        if wide:
            row += [node_internal_ip(obj), info.os_image or "<unknown>", info.kernel_version or "<unknown>",
                    info.container_runtime_version or "<unknown>"]
        return row

    def describe_related(self, obj: Message) -> dict[str, tuple[str, str]]:
        return {"Pod": ("", f"spec.nodeName={obj.metadata.name}")}

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        return describe_node(obj, ctx)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


KIND = Kind("Node", "v1", "nodes", "node", types_pb2.Node, False, ("node", "no"), strategy=NodeStrategy())


# ---------------------------------------------------------------- printing

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


# ---------------------------------------------------------------- describe

def describe_node(node: Message, ctx: DescribeContext) -> str:
    pods = ctx.related.get("Pod", [])
    text = describing.Text()
    meta, status = node.metadata, node.status
    text.multiline("Name", meta.name)
    text.multiline("Roles", node_roles(node))
    text.multiline("Labels", describing.map_text(meta.labels))
    text.multiline("Annotations", describing.map_text(meta.annotations))
    text.multiline("CreationTimestamp", describing.ts(meta.creation_timestamp))
    text.multiline("Unschedulable", str(node.spec.unschedulable).lower())
    text.multiline("PodCIDR", node.spec.pod_cidr or "<none>")
    text.line("Conditions:")
    rows = [["Type", "Status", "LastHeartbeatTime", "Reason", "Message"]]
    rows += [[c.type, c.status, describing.ts(c.last_heartbeat_time), c.reason, c.message] for c in status.conditions]
    text.table(rows)
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
                     humanize.age(p.metadata.creation_timestamp, now=ctx.now)])
    text.table(rows)
    describing.events(text, ctx.events, now=ctx.now)
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
