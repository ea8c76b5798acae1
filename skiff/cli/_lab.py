"""The nodes of `skiff up --nodes N`: network namespaces acting as hosts on one private link.

    host netns                 netns NAME-lab                    netns NAME-node-I
    ──────────                 ──────────────                    ─────────────────
    NAME-host 10.213.0.1/24 ═══ NAME-lh ─┐
      (etcd, API on loopback;            ├─ bridge NAME-lab      NAME-eth0 10.213.0.(I+1)/24
       the API also here)      NAME-lI ──┘  (L2 only) ══════════ (the agent, its pod bridge
                                                                  NAME-brI, table inet NAME-node-I,
                                                                  routes to the other podCIDRs, with
                                                                  vxlan its tunnel device NAME-vxI)

The link between the nodes is a bridge inside the lab namespace, so it exists
only in namespaces Skiff creates; the host reaches it through one veth of its
own, NAME-host, whose only route is the link's connected /24. No namespace has
a default route, the host's end forwards nothing (its `forwarding` is 0), and
nothing is routed off the machine. Every object carries the cluster's NAME
(which starts with "skiff"): `ip netns`, `ip link` and `nft list tables` show
what a cluster left behind, and `remove_all` removes it.

Kernel work is done with iproute2's `ip` (`ip -n NS ...`), as a person would
type it; every command is idempotent through a check first.
"""
from __future__ import annotations

import ipaddress
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from skiff.cli._common import CliError

NETNS_DIR = Path("/run/netns")
MAX_NAME = 9          # so NAME-brIII fits the kernel's 15 characters
NAME_RE = re.compile(r"^skiff[a-z0-9]*$")


@dataclass(frozen=True)
class Lab:
    name: str             # the cluster's prefix for every kernel object, e.g. "skiff"
    node_cidr: str        # the private link's subnet: .1 the host, .(I+1) node I

    @property
    def netns(self) -> str:
        return f"{self.name}-lab"

    @property
    def bridge(self) -> str:
        return f"{self.name}-lab"

    @property
    def host_link(self) -> str:
        return f"{self.name}-host"

    @property
    def lab_end_of_host(self) -> str:
        return f"{self.name}-lh"

    @property
    def node_link(self) -> str:
        """The node's end of its link, inside the node's namespace."""
        return f"{self.name}-eth0"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.node_cidr)

    @property
    def host_ip(self) -> str:
        return str(self.network[1])

    def node(self, index: int) -> "LabNode":
        return LabNode(lab=self, index=index)


@dataclass(frozen=True)
class LabNode:
    lab: Lab
    index: int

    @property
    def name(self) -> str:
        """The Node's name, and its network namespace's."""
        return f"{self.lab.name}-node-{self.index}"

    @property
    def netns(self) -> str:
        return self.name

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.netns

    @property
    def ip(self) -> str:
        return str(self.lab.network[1 + self.index])

    @property
    def lab_end(self) -> str:
        return f"{self.lab.name}-l{self.index}"

    @property
    def bridge(self) -> str:
        return f"{self.lab.name}-br{self.index}"

    @property
    def vxlan_device(self) -> str:
        return f"{self.lab.name}-vx{self.index}"

    @property
    def nft_table(self) -> str:
        return self.name

    @property
    def cgroup_parent(self) -> str:
        return self.name


def validate(*, name: str, node_cidr: str, indexes: tuple[int, ...] = ()) -> None:
    if not NAME_RE.match(name) or len(name) > MAX_NAME:
        raise CliError(f"--name: {name!r} must start with 'skiff', be lowercase letters and digits, "
                       f"and be at most {MAX_NAME} characters")
    try:
        network = ipaddress.IPv4Network(node_cidr)
    except ValueError as exc:
        raise CliError(f"--node-cidr: {node_cidr!r} is not an IPv4 network: {exc}") from None
    if not network.is_private:
        raise CliError(f"--node-cidr: {node_cidr} is not a private network")
    most = network.num_addresses - 3   # the network, the host's address, broadcast
    if indexes and max(indexes) > most:
        raise CliError(f"--node-cidr: {node_cidr} has room for {most} nodes, not {max(indexes)}")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise CliError("`ip` (iproute2) is not installed; it is needed for --nodes") from None
    if check and done.returncode != 0:
        raise CliError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def _netns_exists(netns: str) -> bool:
    return (NETNS_DIR / netns).exists()


def _link_exists(link: str, *, netns: str | None = None) -> bool:
    return _ip(*(("-n", netns) if netns else ()), "link", "show", "dev", link, check=False).returncode == 0


def _sysctl(path: str, value: str) -> None:
    Path("/proc/sys/net", path).write_text(value)


def check_free(lab: Lab) -> None:
    """Refuse a node CIDR that overlaps an address the host already has (other than the lab's own)."""
    done = _ip("-o", "-4", "addr", "show")
    for line in done.stdout.splitlines():
        fields = line.split()
        link, address = fields[1], fields[3]
        if link != lab.host_link and ipaddress.IPv4Interface(address).network.overlaps(lab.network):
            raise CliError(f"--node-cidr {lab.node_cidr} overlaps {address} on {link}; choose another")


def ensure_lab(lab: Lab) -> None:
    """The lab namespace with its bridge, and the host's link into it. Idempotent."""
    if not _link_exists(lab.host_link):
        check_free(lab)
    if not _netns_exists(lab.netns):
        _ip("netns", "add", lab.netns)
    _ip("-n", lab.netns, "link", "set", "lo", "up")
    if not _link_exists(lab.bridge, netns=lab.netns):
        _ip("-n", lab.netns, "link", "add", lab.bridge, "type", "bridge")
    _ip("-n", lab.netns, "link", "set", lab.bridge, "up")
    if not _link_exists(lab.host_link):
        _ip("link", "add", lab.host_link, "type", "veth", "peer", "name", lab.lab_end_of_host, "netns", lab.netns)
    # The host's end only ever talks to the nodes: no IPv6 chatter, and no
    # forwarding of what arrives on it, whatever the host does elsewhere.
    _sysctl(f"ipv6/conf/{lab.host_link}/disable_ipv6", "1")
    _sysctl(f"ipv4/conf/{lab.host_link}/forwarding", "0")
    address = f"{lab.host_ip}/{lab.network.prefixlen}"
    if address not in _ip("-o", "-4", "addr", "show", "dev", lab.host_link).stdout:
        _ip("addr", "add", address, "dev", lab.host_link)
    _ip("link", "set", lab.host_link, "up")
    _ip("-n", lab.netns, "link", "set", lab.lab_end_of_host, "master", lab.bridge, "up")


def ensure_node(node: LabNode) -> None:
    """Node I's namespace, plugged into the lab's bridge with its node IP. Idempotent."""
    lab = node.lab
    if not _netns_exists(node.netns):
        _ip("netns", "add", node.netns)
    _ip("-n", node.netns, "link", "set", "lo", "up")
    if not _link_exists(node.lab_end, netns=lab.netns):
        _ip("-n", lab.netns, "link", "add", node.lab_end, "type", "veth", "peer", "name", lab.node_link,
            "netns", node.netns)
    _ip("-n", lab.netns, "link", "set", node.lab_end, "master", lab.bridge, "up")
    address = f"{node.ip}/{lab.network.prefixlen}"
    if address not in _ip("-n", node.netns, "-o", "-4", "addr", "show", "dev", lab.node_link).stdout:
        _ip("-n", node.netns, "addr", "add", address, "dev", lab.node_link)
    _ip("-n", node.netns, "link", "set", lab.node_link, "up")


def remove_node(node: LabNode) -> None:
    """The node's namespace (and with it its link, bridge, routes and table). Idempotent."""
    if _netns_exists(node.lab.netns) and _link_exists(node.lab_end, netns=node.lab.netns):
        _ip("-n", node.lab.netns, "link", "del", node.lab_end)
    if _netns_exists(node.netns):
        _ip("netns", "del", node.netns)


def remove_lab(lab: Lab) -> None:
    if _link_exists(lab.host_link):
        _ip("link", "del", lab.host_link)
    if _netns_exists(lab.netns):
        _ip("netns", "del", lab.netns)


def namespaces(lab: Lab) -> list[str]:
    """The cluster's network namespaces that exist now (lab and nodes)."""
    if not NETNS_DIR.exists():
        return []
    prefix = f"{lab.name}-"
    return sorted(p.name for p in NETNS_DIR.iterdir()
                  if p.name == lab.netns or (p.name.startswith(prefix + "node-")
                                             and p.name[len(prefix) + 5:].isdigit()))
