"""A pod's /etc/resolv.conf per its dnsPolicy, as kubelet writes it (pkg/kubelet/network/dns).

    ClusterFirst (default)   nameserver <the node's cluster DNS>
                             search NS.svc.D svc.D D <the node's search domains>
                             options ndots:5
    ClusterFirstWithHostNet  the same, for hostNetwork pods too
    ClusterFirst + hostNetwork, or no cluster DNS on the node: Default
    Default                  the node's resolv.conf (nameservers, search, options);
                             loopback nameservers dropped for a pod in its own
                             network namespace (they would be its own loopback)
    None                     only what dnsConfig says

`dnsConfig` is merged into every policy: its nameservers and searches are
appended (duplicates dropped), its options replace same-named ones. Kubelet's
limits are kept: 3 nameservers, 32 search domains.
"""
from __future__ import annotations

from dataclasses import dataclass

from proto.skiff.v1 import types_pb2

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
CLUSTER_OPTIONS = ("ndots:5",)


@dataclass(frozen=True)
class HostResolv:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "HostResolv":
        nameservers, searches, options = [], [], []
        for line in text.splitlines():
            parts = line.split("#", 1)[0].split(";", 1)[0].split()
            if not parts:
                continue
            if parts[0] == "nameserver" and len(parts) > 1:
                nameservers.append(parts[1])
            elif parts[0] in ("search", "domain"):
                searches = parts[1:]   # the last search/domain line wins, as in glibc
            elif parts[0] == "options":
                options += parts[1:]
        return cls(tuple(nameservers), tuple(searches), tuple(options))

    @classmethod
    def read(cls, path: str = "/etc/resolv.conf") -> "HostResolv":
        try:
            with open(path) as f:
                return cls.parse(f.read())
        except OSError:
            return cls()


@dataclass(frozen=True)
class ClusterDns:
    """What a node tells its pods: its DNS server's address and the cluster domain."""
    address: str            # "" : no cluster DNS on this node (ClusterFirst falls back to Default)
    domain: str = "cluster.local"


def resolv_conf(pod: types_pb2.Pod, *, cluster: ClusterDns, host: HostResolv) -> str:
    policy = pod.spec.dns_policy or "ClusterFirst"
    host_network = pod.spec.host_network
    if policy == "ClusterFirst" and host_network:
        policy = "Default"
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not cluster.address:
        policy = "Default"
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        ns = pod.metadata.namespace or "default"
        d = cluster.domain.strip(".")
        nameservers = [cluster.address]
        searches = [f"{ns}.svc.{d}", f"svc.{d}", d, *host.searches]
        options = list(CLUSTER_OPTIONS)
    elif policy == "Default":
        nameservers = [n for n in host.nameservers if host_network or not _loopback(n)]
        searches = list(host.searches)
        options = list(host.options)
    config = pod.spec.dns_config
    nameservers += list(config.nameservers)
    searches += list(config.searches)
    options = _merge_options(options, [o.name + (f":{o.value}" if o.HasField("value") else "")
                                       for o in config.options])
    out = [f"nameserver {n}" for n in _unique(nameservers)[:MAX_NAMESERVERS]]
    searches = _unique(s.strip(".") for s in searches if s.strip("."))[:MAX_SEARCHES]
    if searches:
        out.append("search " + " ".join(searches))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"


def _merge_options(base: list[str], extra: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for option in base + extra:
        merged[option.split(":", 1)[0]] = option
    return list(merged.values())


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"
