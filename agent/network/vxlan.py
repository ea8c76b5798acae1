"""The `vxlan` backend (flannel's, with the kernel's VXLAN device): other nodes'
pods through a tunnel, for nodes that do not share a link.

Each node has one VXLAN device (VNI 1, UDP 8472, learning off, its local
address the node IP, over the interface holding it). For every other node
the agent keeps three entries, all on that device:

    route      podCIDR via VTEP-IP dev DEV onlink proto 95    (VTEP-IP: the podCIDR's network address)
    neighbour  VTEP-IP lladdr VTEP-MAC permanent               (no ARP across the tunnel)
    fdb        VTEP-MAC dst NODE-IP permanent                  (where to send the encapsulated frame)

A VTEP's MAC is derived from its node IP (0a:58 and the four octets, as
ovn-kubernetes derives pod MACs), so no node has to publish it: the Node's
InternalIP says it all, and the MAC read back from a neighbour says which
node a route leads to (`list`). The device's MTU is the underlay's minus
the 50 bytes of VXLAN over IPv4, and the pods' interfaces get the same MTU,
so nothing is fragmented or dropped for size.

`VxlanRouteTable` is a `routes.RouteTable` (podCIDR -> node IP), so the
controller and the pure `plan` of host-gw drive it unchanged.
"""
from __future__ import annotations

import errno
import ipaddress
import socket

from agent.network.links import NetlinkError, _index, _iproute
from agent.network.routes import MAIN_TABLE, ROUTE_PROTOCOL
from agent.network.types import NetworkError

VNI = 1
PORT = 8472               # the Linux kernel's and flannel's VXLAN port
OVERHEAD = 50             # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
NUD_PERMANENT = 0x80
NTF_SELF = 0x02           # an FDB entry of the VXLAN device itself (a bridge's would need NTF_MASTER)


def vtep_mac(node_ip: str) -> str:
    octets = ipaddress.IPv4Address(node_ip).packed
    return ":".join(f"{b:02x}" for b in (0x0A, 0x58, *octets))


def node_ip_of(mac: str) -> str:
    parts = [int(p, 16) for p in mac.split(":")]
    return str(ipaddress.IPv4Address(bytes(parts[2:]))) if parts[:2] == [0x0A, 0x58] else ""


def vtep_ip(pod_cidr: str) -> str:
    return str(ipaddress.IPv4Network(pod_cidr).network_address)


def ensure_device(*, name: str, node_ip: str, underlay: str) -> int:
    """The node's VXLAN device, up; returns its MTU."""
    with _iproute() as ipr:
        under = _index(ipr, underlay)
        if under is None:
            raise NetworkError(f"interface {underlay} (holding the node IP) is gone")
        mtu = ipr.link("get", index=under)[0].get("IFLA_MTU") - OVERHEAD
        if _index(ipr, name) is None:
            try:
                ipr.link("add", ifname=name, kind="vxlan", vxlan_id=VNI, vxlan_local=node_ip, vxlan_link=under,
                         vxlan_port=PORT, vxlan_learning=0, address=vtep_mac(node_ip), mtu=mtu)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise NetworkError(f"cannot create VXLAN device {name} over {underlay}: {exc}") from exc
        ipr.link("set", index=_index(ipr, name), state="up")
    return mtu


class VxlanRouteTable:
    """Routes, neighbours and FDB entries on `device`, as a RouteTable."""

    def __init__(self, *, device: str) -> None:
        self.device = device

    def _device(self, ipr) -> int:
        index = _index(ipr, self.device)
        if index is None:
            raise NetworkError(f"VXLAN device {self.device} is gone")
        return index

    def _neighbours(self, ipr, index: int) -> dict[str, str]:
        return {n.get("NDA_DST"): n.get("NDA_LLADDR") for n in ipr.get_neighbours(family=socket.AF_INET, ifindex=index)
                if n.get("NDA_DST") and n.get("NDA_LLADDR")}

    def list(self) -> dict[str, str]:
        with _iproute() as ipr:
            index = self._device(ipr)
            macs = self._neighbours(ipr, index)
            out = {}
            for route in ipr.get_routes(family=socket.AF_INET, table=MAIN_TABLE, proto=ROUTE_PROTOCOL, oif=index):
                if route["proto"] != ROUTE_PROTOCOL or route.get("RTA_OIF") != index:
                    continue
                gateway = route.get("RTA_GATEWAY") or ""
                out[f"{route.get('RTA_DST')}/{route['dst_len']}"] = node_ip_of(macs.get(gateway, "0:0"))
            return out

    def replace(self, cidr: str, node_ip: str) -> None:
        gateway, mac = vtep_ip(cidr), vtep_mac(node_ip)
        with _iproute() as ipr:
            index = self._device(ipr)
            try:
                ipr.fdb("replace", ifindex=index, lladdr=mac, dst=node_ip, state=NUD_PERMANENT, flags=NTF_SELF)
                ipr.neigh("replace", ifindex=index, dst=gateway, lladdr=mac, state=NUD_PERMANENT)
                ipr.route("replace", dst=cidr, gateway=gateway, oif=index, flags=["onlink"], proto=ROUTE_PROTOCOL,
                          table=MAIN_TABLE)
            except NetlinkError as exc:
                raise NetworkError(f"cannot route {cidr} to {node_ip} over {self.device}: {exc}") from exc

    def delete(self, cidr: str) -> None:
        gateway = vtep_ip(cidr)
        with _iproute() as ipr:
            index = self._device(ipr)
            mac = self._neighbours(ipr, index).get(gateway)
            for call in (lambda: ipr.route("del", dst=cidr, proto=ROUTE_PROTOCOL, table=MAIN_TABLE),
                         lambda: ipr.neigh("del", ifindex=index, dst=gateway, lladdr=mac) if mac else None,
                         lambda: ipr.fdb("del", ifindex=index, lladdr=mac, dst=node_ip_of(mac), flags=NTF_SELF) if mac else None):
                try:
                    call()
                except NetlinkError as exc:
                    if exc.code not in (errno.ESRCH, errno.ENOENT):
                        raise NetworkError(f"cannot remove the route to {cidr} over {self.device}: {exc}") from exc
