"""A plain rtnetlink socket for the per-pod path: pyroute2's messages, none of its machinery.

pyroute2's IPRoute runs every request through an asyncio event loop of its own
and a request filter: ~0.2 ms to open one and ~0.3 ms a request here, so the
11 requests and 2 sockets of wiring a pod cost ~5 ms of CPU, the largest part
of the agent's attach (docs/benchmarks.md, 2026-12-02). The messages
themselves are pyroute2's (`ifinfmsg`, `ifaddrmsg`, `rtmsg`, the library made
for the wire format); this module only sends one, reads until the kernel's
acknowledgement, and raises pyroute2's NetlinkError for an error, so callers
handle failures as they do with IPRoute. A request and its acknowledgement cost ~20 µs.

Node-wide work that runs once (the bridge, the table's uplinks, dumps) stays
on IPRoute in agent/network/links.py.
"""
from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
from typing import Any

from agent.lightimport import package

package("pyroute2")
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402
from pyroute2.netlink.rtnl import (  # noqa: E402
    RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE, RTM_SETLINK,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg  # noqa: E402
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP, ifinfmsg  # noqa: E402
from pyroute2.netlink.rtnl.rtmsg import rtmsg  # noqa: E402

NETLINK_ROUTE = 0
AF_BRIDGE = 7
NLA_F_NESTED = 0x8000
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1
_HEADER = struct.Struct("=IHHII")    # nlmsghdr: length, type, flags, sequence, pid
_ERROR = struct.Struct("=i")         # nlmsgerr.error, right after the header
_IFINDEX = struct.Struct("=i")
_BUFFER = 65536


class Rtnl:
    """One NETLINK_ROUTE socket; `request` sends a message and returns the kernel's replies.

    Give it a socket made in another network namespace to work there (a
    netlink socket stays bound to the namespace it was created in).
    """

    def __init__(self, sock: socket.socket | None = None) -> None:
        self._sock = sock if sock is not None else socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
        self._sequence = itertools.count(1)

    def __enter__(self) -> "Rtnl":
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()

    def request(self, msg: Any, *, msg_type: int, flags: int = 0) -> list[bytes]:
        """Send msg (NLM_F_REQUEST|NLM_F_ACK|flags); the kernel's replies, undecoded.

        Raises NetlinkError(errno) when the kernel refuses it.
        """
        sequence = next(self._sequence)
        header = msg["header"]
        header["type"], header["flags"], header["sequence_number"] = msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, sequence
        msg.encode()
        self._sock.send(msg.data)
        replies: list[bytes] = []
        while True:
            data = self._sock.recv(_BUFFER)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    raise NetlinkError(errno.EBADMSG, "truncated netlink message")
                if seq == sequence:
                    if kind == NLMSG_ERROR:
                        code = -_ERROR.unpack_from(data, offset + _HEADER.size)[0]
                        if code:
                            raise NetlinkError(code, f"{type(msg).__name__} request: {os.strerror(code)}")
                        return replies    # the acknowledgement ends the exchange
                    if kind == NLMSG_DONE:
                        return replies
                    replies.append(data[offset:offset + length])
                offset += (length + 3) & ~3

    # -- the requests of the per-pod path ---------------------------------

    def index(self, name: str) -> int | None:
        """The ifindex of the link called name; None when there is none."""
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        try:
            replies = self.request(msg, msg_type=RTM_GETLINK)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise
        # ifinfomsg.ifi_index, right after the header, family, pad and type: decoding
        # the whole reply (every attribute and statistic of the link) would cost more
        # than the request.
        return _IFINDEX.unpack_from(replies[0], _HEADER.size + 4)[0] if replies else None

    def set_link(self, *, index: int = 0, name: str = "", mtu: int = 0) -> None:
        """Bring a link up (by index, or by name: the kernel finds it), optionally setting its MTU."""
        msg = ifinfmsg()
        msg["index"] = index
        msg["flags"], msg["change"] = IFF_UP, IFF_UP
        attrs: list[tuple[str, Any]] = [] if index else [("IFLA_IFNAME", name)]
        if mtu:
            attrs.append(("IFLA_MTU", mtu))
        msg["attrs"] = attrs
        self.request(msg, msg_type=RTM_NEWLINK)

    def add_veth(self, *, name: str, peer: str, peer_netns_fd: int, master: int, mtu: int = 0) -> None:
        """Create name <-> peer, peer born in the namespace of peer_netns_fd; name up on master."""
        peer_attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", peer), ("IFLA_NET_NS_FD", peer_netns_fd)]
        attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", name), ("IFLA_MASTER", master)]
        if mtu:
            peer_attrs.append(("IFLA_MTU", mtu))
            attrs.append(("IFLA_MTU", mtu))
        attrs.append(("IFLA_LINKINFO", {"attrs": [
            ("IFLA_INFO_KIND", "veth"),
            ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer_attrs})]}),
        ]}))
        msg = ifinfmsg()
        msg["flags"], msg["change"] = IFF_UP, IFF_UP
        msg["attrs"] = attrs
        self.request(msg, msg_type=RTM_NEWLINK, flags=NLM_F_CREATE | NLM_F_EXCL)

    def set_hairpin(self, index: int) -> None:
        """IFLA_BRPORT_MODE on a bridge port: frames may leave by the port they came in on."""
        msg = ifinfmsg()
        msg["family"], msg["index"] = AF_BRIDGE, index
        msg["attrs"] = [("IFLA_PROTINFO", {"attrs": [("IFLA_BRPORT_MODE", 1)]}, NLA_F_NESTED)]
        self.request(msg, msg_type=RTM_SETLINK)

    def delete_link(self, name: str) -> bool:
        """Delete the link called name; False when there is none."""
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        try:
            self.request(msg, msg_type=RTM_DELLINK)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise
        return True

    def add_address(self, *, index: int, ip: str, prefix_len: int) -> None:
        msg = ifaddrmsg()
        msg["family"], msg["prefixlen"], msg["index"] = socket.AF_INET, prefix_len, index
        msg["attrs"] = [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip)]
        self.request(msg, msg_type=RTM_NEWADDR, flags=NLM_F_CREATE | NLM_F_EXCL)

    def add_default_route(self, *, gateway: str, index: int) -> None:
        msg = rtmsg()
        msg["family"], msg["table"], msg["proto"] = socket.AF_INET, RT_TABLE_MAIN, RTPROT_BOOT
        msg["scope"], msg["type"] = RT_SCOPE_UNIVERSE, RTN_UNICAST
        msg["attrs"] = [("RTA_GATEWAY", gateway), ("RTA_OIF", index)]
        self.request(msg, msg_type=RTM_NEWROUTE, flags=NLM_F_CREATE | NLM_F_EXCL)

