"""Netlink work for pod networking: the node bridge and each pod's veth pair.

Node-wide work goes through pyroute2's IPRoute, one short-lived one per
operation; the per-pod path (a veth, the pod's interfaces, a link's deletion)
through agent/network/rtnl.py: pyroute2's messages on a plain socket.
Work inside a pod's network namespace uses a netlink socket opened *in* that
namespace: the calling thread enters it with setns(2), opens the socket and
returns at once (a socket stays bound to the namespace it was made in).
pyroute2's own `netns=` option forks a helper process instead, which is unsafe
in the agent's threaded gRPC process, so it is not used.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import logging
import os
import random
import socket
from pathlib import Path
from typing import Iterator

from agent.lightimport import package
from agent.network.rtnl import Rtnl
from agent.network.types import VETH_PREFIX, NetworkError

package("pyroute2")  # its __init__ imports all of pyroute2: ~6 MiB the agent would keep (agent.lightimport)
from pyroute2.iproute.linux import IPRoute  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
POD_IFNAME = "eth0"

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(*, fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetworkError(f"setns(CLONE_NEWNET) into {what} failed: {os.strerror(err)}")


def _netns_socket(netns_path: Path) -> socket.socket:
    """A NETLINK_ROUTE socket bound to the network namespace pinned at netns_path."""
    try:
        target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetworkError(f"cannot open pod network namespace {netns_path}: {exc.strerror}") from exc
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd=target, what=str(netns_path))
        try:
            return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
        finally:
            # A thread left in the pod's namespace would do the node's work there.
            _setns(fd=home, what="the node's namespace (/proc/thread-self/ns/net)")
    finally:
        os.close(target)
        os.close(home)


@contextlib.contextmanager
def _iproute(netns_path: Path | None = None) -> Iterator[IPRoute]:
    """An IPRoute on the node's namespace, or on the one pinned at netns_path."""
    if netns_path is None:
        with IPRoute(groups=0) as ipr:
            yield ipr
        return
    with IPRoute(use_socket=_netns_socket(netns_path), groups=0) as ipr:
        yield ipr


def _index(ipr: IPRoute, name: str) -> int | None:
    # A direct RTM_GETLINK by name; link_lookup() would dump every link.
    try:
        return ipr.link("get", ifname=name)[0]["index"]
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise NetworkError(f"RTM_GETLINK {name} failed: {exc}") from exc


def _random_mac() -> str:
    # Locally administered unicast. Setting it explicitly stops the bridge from
    # taking the lowest port MAC, which would change under the pods' ARP caches.
    octets = [0x02] + [random.randrange(256) for _ in range(5)]
    return ":".join(f"{o:02x}" for o in octets)


def get_interface_sysctl(*, interface: str, key: str) -> str:
    path = Path("/proc/sys/net/ipv4/conf") / interface / key
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise NetworkError(f"cannot read sysctl net.ipv4.conf.{interface}.{key}: {exc.strerror}") from exc


def set_interface_sysctl(*, interface: str, key: str, value: str, missing_ok: bool = False) -> None:
    """Write net.ipv4.conf.<interface>.<key>: one interface only, never all/default."""
    path = Path("/proc/sys/net/ipv4/conf") / interface / key
    try:
        path.write_text(value)
    except FileNotFoundError:
        if not missing_ok:
            raise NetworkError(f"cannot set sysctl net.ipv4.conf.{interface}.{key}: no interface {interface}")
    except OSError as exc:
        raise NetworkError(f"cannot set sysctl net.ipv4.conf.{interface}.{key}={value}: {exc.strerror}") from exc


def ensure_bridge(*, name: str, gateway: str, prefix_len: int) -> None:
    """Create the bridge if absent, give it the gateway address, bring it up."""
    with _iproute() as ipr:
        index = _index(ipr, name)
        if index is None:
            try:
                ipr.link("add", ifname=name, kind="bridge", address=_random_mac())
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:  # a concurrent ensure made it
                    raise NetworkError(f"cannot create bridge {name}: {exc}") from exc
            index = _index(ipr, name)
            if index is None:
                raise NetworkError(f"bridge {name} vanished right after being created")
        addresses = {(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=socket.AF_INET)}
        if (gateway, prefix_len) not in addresses:
            try:
                ipr.addr("add", index=index, address=gateway, prefixlen=prefix_len)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise NetworkError(f"cannot add {gateway}/{prefix_len} to bridge {name}: {exc}") from exc
        ipr.link("set", index=index, state="up")
        try:
            # This bridge's frames between two pods through the IPv4 hooks (br_netfilter's
            # per-bridge switch, not the host-wide sysctl): NetworkPolicy holds between
            # pods of one node too (agent/network/policy.py, decision 30).
            ipr.link("set", index=index, kind="bridge", br_nf_call_iptables=1)
        except NetlinkError as exc:
            log.warning("bridge %s: cannot pass bridged traffic to the IPv4 hooks (%s); network policies "
                        "do not hold between pods of this node", name, exc)


def check_cidr_unused(*, pod_cidr: str, bridge: str) -> None:
    """Refuse a pod CIDR that overlaps an address on any interface but our bridge."""
    network = ipaddress.IPv4Network(pod_cidr)
    with _iproute() as ipr:
        names = {link["index"]: link.get("ifname") for link in ipr.get_links()}
        for addr in ipr.get_addr(family=socket.AF_INET):
            iface = ipaddress.IPv4Interface(f"{addr.get('address')}/{addr['prefixlen']}")
            owner = names.get(addr["index"])
            if owner != bridge and iface.network.overlaps(network):
                raise NetworkError(f"pod CIDR {pod_cidr} overlaps {iface} on interface {owner}")


def interface_with_address(*, ip: str) -> str | None:
    """The name of the interface that carries ip in the node's namespace, if any."""
    with _iproute() as ipr:
        for addr in ipr.get_addr(family=socket.AF_INET):
            if addr.get("address") == ip:
                return _name(ipr, addr["index"])
    return None


def default_route_interface() -> str | None:
    """The interface of the node namespace's IPv4 default route (main table), if it has one."""
    with _iproute() as ipr:
        for route in ipr.get_routes(family=socket.AF_INET, table=254):
            if route.get("dst_len") == 0 and route.get_attr("RTA_OIF") is not None:
                return _name(ipr, route.get_attr("RTA_OIF"))
    return None


def _name(ipr: IPRoute, index: int) -> str | None:
    links = ipr.link("get", index=index)
    return links[0].get("ifname") if links else None


def link_exists(*, name: str) -> bool:
    with Rtnl() as rtnl:
        return rtnl.index(name) is not None


def delete_link(*, name: str) -> bool:
    """Delete a link by name; False if it was not there."""
    with Rtnl() as rtnl:
        try:
            return rtnl.delete_link(name)
        except NetlinkError as exc:
            raise NetworkError(f"cannot delete link {name}: {exc}") from exc


def bridge_ports(*, bridge: str) -> list[str]:
    """Names of Skiff veths enslaved to the bridge."""
    with _iproute() as ipr:
        master = _index(ipr, bridge)
        if master is None:
            return []
        return [link.get("ifname") for link in ipr.get_links()
                if link.get("master") == master and link.get("ifname", "").startswith(VETH_PREFIX)]


def create_pod_veth(*, host_name: str, bridge: str, netns_path: Path, mtu: int = 0) -> None:
    """Create host_name <-> eth0 with eth0 born inside the pod's namespace, host end up on the bridge."""
    try:
        ns_fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetworkError(f"cannot open pod network namespace {netns_path}: {exc.strerror}") from exc
    try:
        with Rtnl() as rtnl:
            master = rtnl.index(bridge)
            if master is None:
                raise NetworkError(f"bridge {bridge} does not exist; call ensure_node_network() first")
            try:
                rtnl.add_veth(name=host_name, peer=POD_IFNAME, peer_netns_fd=ns_fd, master=master, mtu=mtu)
            except NetlinkError as exc:
                raise NetworkError(f"cannot create veth {host_name} with {POD_IFNAME} in {netns_path}: {exc}") from exc
            index = rtnl.index(host_name)
            if index is None:
                raise NetworkError(f"veth {host_name} vanished right after being created")
            # Hairpin lets a pod reach its own hostPort through the node's address: after
            # DNAT the bridge must send the frame back out of the port it came in on.
            # Set by netlink (IFLA_BRPORT_MODE), not /sys/class/net: an agent in a node's
            # network namespace still sees the host's sysfs, where this veth is not.
            try:
                rtnl.set_hairpin(index)
            except NetlinkError as exc:
                raise NetworkError(f"cannot enable hairpin mode on {host_name}: {exc}") from exc
    finally:
        os.close(ns_fd)


def pod_has_address(*, netns_path: Path, ip: str) -> bool:
    """Does eth0 in the namespace at netns_path carry ip? False if the namespace is gone."""
    if not Path(netns_path).exists():
        return False
    with _iproute(netns_path) as ipr:
        eth0 = _index(ipr, POD_IFNAME)
        if eth0 is None:
            return False
        return any(a.get("address") == ip for a in ipr.get_addr(index=eth0, family=socket.AF_INET))


def configure_pod_interfaces(*, netns_path: Path, ip: str, prefix_len: int, gateway: str, mtu: int = 0) -> None:
    """Inside the pod: lo and eth0 up, the address on eth0, default route via the bridge."""
    with Rtnl(_netns_socket(netns_path)) as rtnl:
        eth0 = rtnl.index(POD_IFNAME)
        if eth0 is None:
            raise NetworkError(f"pod namespace {netns_path} lacks {POD_IFNAME}")
        try:
            rtnl.set_link(name="lo")
            rtnl.add_address(index=eth0, ip=ip, prefix_len=prefix_len)
            rtnl.set_link(index=eth0, mtu=mtu)
            rtnl.add_default_route(gateway=gateway, index=eth0)
        except NetlinkError as exc:
            raise NetworkError(f"cannot configure {POD_IFNAME} ({ip}/{prefix_len} via {gateway}) "
                               f"in {netns_path}: {exc}") from exc
