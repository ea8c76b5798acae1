"""Is a host port free? Ask the kernel by binding it for a moment.

A hostPort rule DNATs traffic before any socket sees it, so publishing a port
that a host process already listens on would silently steal that process's
traffic. `host_port_holder` finds such a socket first, in the namespace this
process runs in (the node's, where the DNAT rules apply).

Why a bind probe and not /proc/net/tcp: reading /proc/net/tcp walks the
kernel's whole connection hash table (tens of milliseconds on a big host),
while bind() answers exactly the question we have, with the kernel's own
rules: a listener on the wildcard address, on the same address, or on the
IPv6 wildcard (dual stack) makes it fail with EADDRINUSE; TIME_WAIT leftovers
do not (SO_REUSEADDR); a listener on another address of the node does not.
IP_FREEBIND lets the probe run for a hostIP that is not (yet) local.
"""
from __future__ import annotations

import errno
import socket

IP_FREEBIND = 15  # <linux/in.h>; not exported by Python's socket module


def host_port_holder(*, protocol: str, port: int, host_ip: str) -> str | None:
    """Describe what holds host_ip:port/protocol on this node, or None when it is free."""
    kind = socket.SOCK_STREAM if protocol == "TCP" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        if kind == socket.SOCK_STREAM:
            # Only listeners count; a TCP connection's TIME_WAIT remnant must not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        try:
            probe.bind((host_ip, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                verb = "listening" if protocol == "TCP" else "bound"
                return f"a host socket {verb} on {host_ip}:{port} (or the wildcard address)"
            raise
    return None
