"""Is a host port free? Read from the kernel's socket tables in /proc/net.

A hostPort rule DNATs traffic before any socket sees it, so publishing a port
that a host process already listens on would silently steal that process's
traffic. `host_socket_holding` finds such a socket first. It reads the tables
of the network namespace this process runs in (the node's), which is where
the DNAT rules apply.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path
from typing import Iterable

TCP_LISTEN = "0A"
WILDCARDS = {"0.0.0.0", "::"}


def _decode_address(hex_addr: str) -> str:
    """/proc/net/{tcp,udp}{,6} print addresses as host-order 32-bit words in hex."""
    raw = bytes.fromhex(hex_addr)
    words = struct.unpack(f"<{len(raw) // 4}I", raw)
    packed = struct.pack(f">{len(words)}I", *words)
    if len(packed) == 4:
        return socket.inet_ntop(socket.AF_INET, packed)
    address = ipaddress.IPv6Address(packed)
    return str(address.ipv4_mapped) if address.ipv4_mapped else str(address)


def bound_sockets(*, protocol: str, proc_net: Path = Path("/proc/net")) -> Iterable[tuple[str, int]]:
    """(local address, port) of every listening TCP socket or bound UDP socket."""
    base = protocol.lower()
    for table in (base, base + "6"):
        try:
            lines = (proc_net / table).read_text().splitlines()[1:]
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if protocol == "TCP" and state != TCP_LISTEN:
                continue
            hex_addr, hex_port = local.split(":")
            yield _decode_address(hex_addr), int(hex_port, 16)


def host_socket_holding(*, protocol: str, port: int, host_ips: set[str],
                        proc_net: Path = Path("/proc/net")) -> str | None:
    """Describe a host socket on `port` that would overlap `host_ips`, or None."""
    for address, bound_port in bound_sockets(protocol=protocol, proc_net=proc_net):
        if bound_port == port and (address in WILDCARDS or address in host_ips):
            verb = "listening" if protocol == "TCP" else "bound"
            return f"a host socket {verb} on {address}:{port}"
    return None
