"""Skiff's nftables table: hostPort DNAT, the masquerade it needs, and a fence.

Everything lives in one table of family `inet` (default name `skiff`) that no
one else writes; nothing outside it is ever touched. Every change is one
`nft -f -` transaction that re-declares the table and its chains (a no-op when
they exist), flushes Skiff's chains and re-adds their rules rendered from the
persisted state, so the rules always equal the state and a half-applied change
cannot exist. Rules carry the pod id in their comment so a person (or a test)
can see whose they are.

    prerouting  (nat, dstnat)  ─┐
    output      (nat, dstnat)  ─┴─► hostports: ip daddr {node IP, 127.0.0.1} tcp dport P
                                               dnat to podIP:containerPort  comment "skiff pod <id>"
    postrouting (nat, srcnat)  masquerade DNAT'd packets leaving on the bridge whose source
                               is 127.0.0.0/8 (the host calling 127.0.0.1:P; needs
                               route_localnet on the bridge) or a pod (hairpin: a pod
                               calling a hostPort that lands on itself or a neighbour)
    forward     (filter)       drop what comes in on the bridge and would leave by another
                               interface: pod networks are never routed off the node (with
                               a cluster CIDR, but for other nodes' pods by an uplink). With
                               uplinks (hostPorts reachable from other nodes), only the
                               DNAT'd hostPort flows cross between an uplink and the
                               bridge, and an uplink whose forwarding Skiff turned on
                               forwards nothing else.
                               With egress `nat` (decision 30): the bridge may also send
                               to any address outside the cluster (neither the cluster
                               CIDR nor the service CIDR), and replies come back in.
    postrouting (nat, srcnat)  egress `nat`: a pod's packet to such an address leaves by the
                               egress uplink masqueraded to the node's address;
                               pod to pod and pod to service are never NATed.
                               Whatever the egress: a pod's flow to the `kubernetes`
                               Service (the service range's first address), DNAT'd to
                               the control plane's address off the node, is let out
                               masqueraded and its replies in (decision 35).
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

from agent.network.state import NetworkState, iter_host_ips
from agent.network.types import NetworkError

NAT_DSTNAT = -100
NAT_SRCNAT = 100
FILTER = 0
CHAINS = ("prerouting", "output", "postrouting", "forward", "hostports")


@dataclass(frozen=True)
class TableSpec:
    table: str
    bridge: str
    pod_cidr: str
    node_ip: str
    uplinks: tuple[str, ...] = ()
    # The whole pod network (all nodes' podCIDRs): with it, pods may reach
    # other nodes' pods through the uplinks, unNATed (agent/network/routes.py).
    cluster_cidr: str = ""
    # Pod egress (decision 30): "nat" masquerades pod traffic to addresses outside
    # the cluster (not cluster_cidr, or pod_cidr without one; not service_cidr);
    # "none" keeps the fence of decision 9.
    egress: str = "none"
    service_cidr: str = ""
    # Where egress leaves and its replies come back (the default route's interface);
    # "": any interface but the bridge.
    egress_uplink: str = ""

    @property
    def api_service_ip(self) -> str:
        """The `kubernetes` Service's cluster IP: the service range's first address (decision 35)."""
        if not self.service_cidr:
            return ""
        import ipaddress
        return str(ipaddress.ip_network(self.service_cidr)[1])

    @property
    def inside(self) -> str:
        """The addresses that are the cluster's own, as an nft set: never NATed."""
        cidrs = [self.cluster_cidr or self.pod_cidr] + ([self.service_cidr] if self.service_cidr else [])
        return "{ " + ", ".join(cidrs) + " }"


def _quote(text: str) -> str:
    """nft strings are double-quoted with no escapes: keep to a safe alphabet."""
    safe = "".join(c if c.isalnum() or c in " -_./:@" else "_" for c in text)
    return f'"{safe[:100]}"'


def render_script(*, spec: TableSpec, state: NetworkState) -> str:
    t = f"inet {spec.table}"
    bridge = _quote(spec.bridge)
    lines = [
        f"table {t} {{",
        f"  chain prerouting {{ type nat hook prerouting priority {NAT_DSTNAT}; policy accept; }}",
        f"  chain output {{ type nat hook output priority {NAT_DSTNAT}; policy accept; }}",
        f"  chain postrouting {{ type nat hook postrouting priority {NAT_SRCNAT}; policy accept; }}",
        f"  chain forward {{ type filter hook forward priority {FILTER}; policy accept; }}",
        "  chain hostports { }",
        "}",
    ]
    lines += [f"flush chain {t} {chain}" for chain in CHAINS]
    lines += [
        f"add rule {t} prerouting jump hostports",
        f"add rule {t} output jump hostports",
        f"add rule {t} postrouting oifname {bridge} ct status dnat ip saddr 127.0.0.0/8 masquerade",
        f"add rule {t} postrouting oifname {bridge} ct status dnat ip saddr {spec.pod_cidr} masquerade",
    ]
    out_by = f"oifname {_quote(spec.egress_uplink)}" if spec.egress_uplink else f"oifname != {bridge}"
    in_by = f"iifname {_quote(spec.egress_uplink)}" if spec.egress_uplink else f"iifname != {bridge}"
    if spec.egress == "nat":
        lines.append(f"add rule {t} postrouting {out_by} ip saddr {spec.pod_cidr} "
                     f"ip daddr != {spec.inside} masquerade")
    api = spec.api_service_ip
    if api:
        # Pods reach the API through the `kubernetes` Service whatever the egress choice (decision 35):
        # its endpoint (the control plane's address on the node's link) is let out masqueraded, and back.
        lines.append(f"add rule {t} postrouting oifname != {bridge} ip saddr {spec.pod_cidr} "
                     f"ct status dnat ct original ip daddr {api} masquerade")
        lines.append(f"add rule {t} forward iifname {bridge} oifname != {bridge} ct original ip daddr {api} accept")
        lines.append(f"add rule {t} forward iifname != {bridge} oifname {bridge} ct original ip daddr {api} "
                     "ct direction reply accept")
    for uplink in spec.uplinks:
        # Replies of hostPort flows that came in from another node.
        lines.append(f"add rule {t} forward iifname {bridge} oifname {_quote(uplink)} "
                     "ct status dnat ct direction reply accept")
    for uplink in spec.uplinks if spec.cluster_cidr else ():
        # Pod to pod across nodes: only towards the pod network, never beyond it.
        lines.append(f"add rule {t} forward iifname {bridge} oifname {_quote(uplink)} "
                     f"ip daddr {spec.cluster_cidr} accept")
    if spec.egress == "nat":
        # Out to the world beyond the cluster (masqueraded in postrouting), and back.
        lines.append(f"add rule {t} forward iifname {bridge} {out_by} ip saddr {spec.pod_cidr} "
                     f"ip daddr != {spec.inside} accept")
        lines.append(f"add rule {t} forward {in_by} oifname {bridge} ip daddr {spec.pod_cidr} "
                     "ct status snat ct state established,related accept")
    if spec.uplinks:
        # The service proxy's hook (decision 25): a NodePort/LoadBalancer flow DNAT'd to
        # another node's pod is relayed between the node's own interfaces, replies too.
        lines.append(f"add rule {t} forward iifname != {bridge} oifname != {bridge} ct status dnat accept")
    lines.append(f"add rule {t} forward iifname {bridge} oifname != {bridge} drop")
    for uplink in spec.uplinks:
        lines.append(f"add rule {t} forward iifname {_quote(uplink)} oifname {bridge} "
                     "ct status dnat ct direction original accept")
        if spec.cluster_cidr:
            lines.append(f"add rule {t} forward iifname {_quote(uplink)} oifname {bridge} "
                         f"ip saddr {spec.cluster_cidr} ip daddr {spec.pod_cidr} accept")
        if uplink in state.forwarding_enabled_on:
            lines.append(f"add rule {t} forward iifname {_quote(uplink)} drop")
    for other in sorted(set(state.forwarding_enabled_on) - set(spec.uplinks)):
        # The egress uplink (decision 30), when it is not a pod-network one: Skiff
        # turned its forwarding on for the replies above alone.
        lines.append(f"add rule {t} forward iifname {_quote(other)} drop")
    for pod_id, record in sorted(state.pods.items()):
        for mapping in record.ports:
            daddrs = ", ".join(iter_host_ips(mapping, node_ip=spec.node_ip))
            proto = mapping.protocol.lower()
            lines.append(
                f"add rule {t} hostports ip daddr {{ {daddrs} }} {proto} dport {mapping.host_port} "
                f"dnat ip to {record.ip}:{mapping.container_port} comment {_quote('skiff pod ' + pod_id)}")
    return "\n".join(lines) + "\n"


def run_nft(args: list[str], script: str | None = None) -> str:
    """`nft ARGS` (with `script` on stdin for `-f -`): its output, or NetworkError
    with nft's own message. Every Skiff table (node, policy, service proxy) goes through it."""
    try:
        done = subprocess.run(["nft", *args], input=script, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise NetworkError("nft (nftables) is not installed") from exc
    if done.returncode != 0:
        raise NetworkError(f"nft {' '.join(args)} failed: {done.stderr.strip()[:2000]}")
    return done.stdout


def apply_rules(*, spec: TableSpec, state: NetworkState) -> None:
    """Make the table equal to the state, in one transaction."""
    run_nft(["-f", "-"], script=render_script(spec=spec, state=state))


def table_exists(*, table: str) -> bool:
    listing = json.loads(run_nft(["-j", "list", "tables", "inet"]))
    return any(item.get("table", {}).get("name") == table for item in listing.get("nftables", []))


def delete_table(*, table: str) -> None:
    """Remove Skiff's table; absent already is fine."""
    if table_exists(table=table):
        run_nft(["delete", "table", "inet", table])


def list_rules(*, table: str) -> list[dict]:
    """The rules of the table as nft's JSON objects ([] when the table is absent)."""
    if not table_exists(table=table):
        return []
    listing = json.loads(run_nft(["-j", "list", "table", "inet", table]))
    return [item["rule"] for item in listing.get("nftables", []) if "rule" in item]
