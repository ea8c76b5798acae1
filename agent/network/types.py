"""The vocabulary of pod networking: what the agent asks for and gets back.

`PortMapping` is one `ports[].hostPort` of a pod, as Docker's `-p` spells it;
`PodAddress` is what the agent writes into the pod's status (podIP) and what the
runtime puts into /etc/hosts. The errors are the ones the agent turns into pod
conditions: `HostPortInUse` is a user error (another pod or a host process
holds the port), `NetworkError` is anything else that went wrong in the kernel.
"""
from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

PROTOCOLS = ("TCP", "UDP")
LOOPBACK_IP = "127.0.0.1"
# Host-side veth names: "skiffv" + 8 hex digits = 14 characters, under IFNAMSIZ (15).
VETH_PREFIX = "skiffv"


class NetworkError(Exception):
    """Pod networking failed; the message names the object and the operation."""


class HostPortInUse(NetworkError):
    """A hostPort is already taken by another pod's mapping or a host socket."""

    def __init__(self, *, host_port: int, protocol: str, holder: str) -> None:
        super().__init__(f"host port {host_port}/{protocol} is already in use by {holder}")
        self.host_port = host_port
        self.protocol = protocol
        self.holder = holder


@dataclass(frozen=True)
class PortMapping:
    """Publish container_port of the pod on host_ip:host_port of the node.

    host_ip "" (or "0.0.0.0") means "the node IP and 127.0.0.1", as
    `docker run -p 5000:5000` publishes on every host address.
    """
    host_port: int
    container_port: int
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass(frozen=True)
class PodAddress:
    ip: str
    gateway: str
    prefix_len: int


def validate_port_mapping(mapping: PortMapping) -> PortMapping:
    """Return the mapping normalised (protocol upper-case, "0.0.0.0" as ""), or raise ValueError."""
    for field_name in ("host_port", "container_port"):
        value = getattr(mapping, field_name)
        if not isinstance(value, int) or not 1 <= value <= 65535:
            raise ValueError(f"ports: {field_name} must be in 1..65535, got {value!r}")
    protocol = (mapping.protocol or "TCP").upper()
    if protocol not in PROTOCOLS:
        raise ValueError(f"ports: protocol must be one of {', '.join(PROTOCOLS)}, got {mapping.protocol!r}")
    host_ip = mapping.host_ip or ""
    if host_ip == "0.0.0.0":
        host_ip = ""
    if host_ip:
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise ValueError(f"ports: hostIP must be an IPv4 address, got {mapping.host_ip!r}") from None
    return PortMapping(host_port=mapping.host_port, container_port=mapping.container_port,
                       protocol=protocol, host_ip=host_ip)


def veth_name(pod_id: str) -> str:
    """The host-side veth of a pod: stable across agent restarts, so cleanup finds it by name."""
    return VETH_PREFIX + hashlib.sha256(pod_id.encode()).hexdigest()[:8]
