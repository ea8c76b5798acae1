"""The pod worker's side of pod networking: attach a sandbox to the node network.

agent.network (PodNetworkManager) owns the bridge, IPAM and nftables; this
module only calls it for one pod — its netns and hostPorts — and turns a
taken host port into the pod's network error (shown as a condition and a
waiting message) instead of an exception. The manager's methods may be plain
or async; they run in a thread either way (the real ones block).
"""
from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Any

from agent.records import PodRecord
from proto.skiff.v1 import types_pb2


async def call_network(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Call a PodNetworkManager method: they block (netlink, nft, a file lock),
    so they run in a thread, off the event loop."""
    result = await asyncio.to_thread(fn, *args, **kwargs)
    return await result if inspect.isawaitable(result) else result


@dataclass(frozen=True)
class _PortMapping:
    host_port: int
    container_port: int
    protocol: str = "TCP"
    host_ip: str = ""


class _NoHostPortError(Exception):
    pass


def network_types() -> tuple[type[Exception], type]:
    """agent.network's HostPortInUse and PortMapping; stand-ins of the same shape
    while that package does not provide them (unit tests with a fake network)."""
    try:
        from agent.network import HostPortInUse, PortMapping
    except ImportError:
        return _NoHostPortError, _PortMapping
    return HostPortInUse, PortMapping


async def attach_pod(*, network: Any, pod: types_pb2.Pod, rec: PodRecord, node_ip: str) -> tuple[bool, str]:
    """Give the pod its address once. Returns (ready, the new error or "")."""
    if pod.spec.host_network:
        rec.pod_ip = node_ip
        return True, ""
    if network is None or rec.pod_ip or rec.sandbox is None or rec.sandbox.netns_path is None:
        return True, ""
    host_port_in_use, port_mapping = network_types()
    ports = [port_mapping(host_port=p.host_port, container_port=p.container_port,
                          protocol=p.protocol or "TCP", host_ip=p.host_ip)
             for c in pod.spec.containers for p in c.ports if p.host_port]
    try:
        address = await call_network(network.attach, pod_id=rec.uid, netns_path=rec.sandbox.netns_path,
                                     ports=ports)
    except host_port_in_use as exc:
        return False, str(exc)
    rec.pod_ip = str(address.ip)
    return True, ""
