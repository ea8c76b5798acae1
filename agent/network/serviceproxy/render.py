"""Services + endpoints in, an nft script out: the proxy's pure half.

The table (family `ip`, Skiff's own, e.g. `skiff-svc`; kube-proxy's nftables
mode is the model) has a fixed part, written on a full sync only:

    filter-prerouting ─┐ (filter, -110) ct state new ─► service-endpoints-check:
    filter-output     ─┘    daddr.proto.port in @no-endpoint-services / @no-endpoint-nodeports
                            ─► reject-chain (tcp reset / icmp port unreachable) or drop
    nat-prerouting ─┐ (nat, -100) ─► services:
    nat-output     ─┘    daddr.proto.port vmap @service-ips   ─► service-… (ClusterIP)
                                                                 external-… (LoadBalancer, externalIPs)
                         daddr in @nodeport-ips: proto.port vmap @service-nodeports ─► external-…
    nat-postrouting (nat, 100) ─► masquerading: packets marked by mark-for-masquerade, and
                         pods that reached themselves (saddr . daddr in @hairpin); to
                         a pod, the source becomes this node's pod-network gateway (another
                         node's fence admits only pod-network sources), else the interface's

and a part per service port, its *unit*: chains, affinity sets and the map
elements that point at them.

    service-H-ns/name/tcp/http      ip saddr != clusterCIDR jump mark-for-masquerade
                                    meta l4proto tcp dnat to numgen random mod N map
                                        { 0 : IP0 . PORT0, 1 : IP1 . PORT1, … }
                                    with sessionAffinity ClientIP instead (kube-proxy's way):
                                    [ip saddr @affinity-E goto endpoint-E]...
                                    numgen random mod N vmap { 0 : goto endpoint-E0, … }
    external-H-ns/name/tcp/http     externalTrafficPolicy Cluster: mark, goto service-H-…
                                    Local: pods and the node itself to service-H-…, else
                                    the spread over this node's endpoints, or drop
    endpoint-E-ns/name/tcp/http__IP/PORT    (sessionAffinity only)
                                    update @affinity-E { ip saddr }
                                    meta l4proto tcp dnat to IP:PORT

Without affinity there is no chain per endpoint: with 1000 Services of 10
endpoints that is 1000 chains instead of 11000, and nft's cost (parsing,
its cache, the kernel's chain validation) grows with the chains
(bench/service_proxy.py; docs/architecture.md, decision 25).

Chain names carry a hash of the service port (and endpoint) plus readable
text, as kube-proxy's do. `render_full` writes the whole table (it replaces
any table of that name, e.g. one a crashed agent left); `render_diff` writes
only what differs between two renders: a change to one Service touches its
own chains and elements. Both are single `nft -f` transactions.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from agent.network.serviceproxy.model import Endpoint, NodeView, ServicePort, pick_endpoints

SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
NODEPORT_IPS = "nodeport-ips"
HAIRPIN = "hairpin"   # endpoint . endpoint: a pod that reached itself through a Service
REJECT = "goto reject-chain"
DROP = "drop"
MAPS = {   # name -> key type
    SERVICE_IPS: "ipv4_addr . inet_proto . inet_service",
    SERVICE_NODEPORTS: "inet_proto . inet_service",
    NO_ENDPOINT_SERVICES: "ipv4_addr . inet_proto . inet_service",
    NO_ENDPOINT_NODEPORTS: "inet_proto . inet_service",
}
MAX_NAME = 200   # the kernel allows 256 (NFT_NAME_MAXLEN)


@dataclass
class Unit:
    """What one service port adds to the table."""
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)   # name -> rules, in order
    sets: dict[str, int] = field(default_factory=dict)                 # affinity set -> timeout (s)
    elements: dict[str, dict[str, str]] = field(default_factory=dict)  # map -> {key: verdict}
    endpoint_ips: frozenset[str] = frozenset()                         # for the hairpin set
    udp_endpoints: frozenset[str] = frozenset()                        # for conntrack clean-up


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest())[:8].decode()


def service_chain(port: ServicePort) -> str:
    return f"service-{_hash(port.key)}-{port.key}"[:MAX_NAME]


def external_chain(port: ServicePort) -> str:
    return f"external-{_hash(port.key)}-{port.key}"[:MAX_NAME]


def endpoint_chain(port: ServicePort, ep: Endpoint) -> str:
    text = f"{port.key}__{ep.ip}/{ep.port}"
    return f"endpoint-{_hash(text)}-{text}"[:MAX_NAME]


def affinity_set(port: ServicePort, ep: Endpoint) -> str:
    return f"affinity-{_hash(f'{port.key}__{ep.ip}/{ep.port}')}-{port.affinity_seconds}"


def _spread(port: ServicePort, endpoints: list[Endpoint], used: dict[str, Endpoint]) -> list[str]:
    """Rules sending a new connection to one of endpoints, evenly at random."""
    proto = port.protocol
    if not port.affinity_seconds:
        # One rule, no chain per endpoint: numgen picks a slot of a data map.
        if len(endpoints) == 1:
            return [f"meta l4proto {proto} dnat to {endpoints[0].ip}:{endpoints[0].port}"]
        arms = ", ".join(f"{i} : {ep.ip} . {ep.port}" for i, ep in enumerate(endpoints))
        return [f"meta l4proto {proto} dnat to numgen random mod {len(endpoints)} map {{ {arms} }}"]
    # sessionAffinity ClientIP (kube-proxy's way): a chain per endpoint that
    # remembers the client in a set with a timeout; a client seen within the
    # timeout goes back to its endpoint, a new one through the verdict map.
    used.update({endpoint_chain(port, ep): ep for ep in endpoints})
    rules = [f"ip saddr @{affinity_set(port, ep)} goto {endpoint_chain(port, ep)}" for ep in endpoints]
    if len(endpoints) == 1:
        rules.append(f"goto {endpoint_chain(port, endpoints[0])}")
    else:
        arms = ", ".join(f"{i} : goto {endpoint_chain(port, ep)}" for i, ep in enumerate(endpoints))
        rules.append(f"numgen random mod {len(endpoints)} vmap {{ {arms} }}")
    return rules


def render_unit(port: ServicePort, node: NodeView) -> Unit:
    unit = Unit()
    proto = port.protocol
    cluster, local = pick_endpoints(port, node_name=node.name)
    has_any = bool(cluster or local or any(e.ready or (e.serving and e.terminating) for e in port.endpoints))
    has_external = bool(port.node_port or port.external_ips)
    svc = service_chain(port)
    ext = external_chain(port)
    ips: dict[str, str] = {}
    nodeports: dict[str, str] = {}
    no_ep_ips: dict[str, str] = {}
    no_ep_nodeports: dict[str, str] = {}
    unit.elements = {SERVICE_IPS: ips, SERVICE_NODEPORTS: nodeports,
                     NO_ENDPOINT_SERVICES: no_ep_ips, NO_ENDPOINT_NODEPORTS: no_ep_nodeports}
    if not has_any:
        # No endpoint anywhere: refuse at once rather than let clients hang.
        for ip in (*port.cluster_ips, *port.external_ips):
            no_ep_ips[f"{ip} . {proto} . {port.port}"] = REJECT
        if port.node_port:
            no_ep_nodeports[f"{proto} . {port.node_port}"] = REJECT
        return unit
    used: dict[str, Endpoint] = {}
    if cluster:
        rules = [f"ip saddr != {node.cluster_cidr} jump mark-for-masquerade"] if node.cluster_cidr else []
        unit.chains[svc] = tuple(rules + _spread(port, cluster, used))
        for ip in port.cluster_ips:
            ips[f"{ip} . {proto} . {port.port}"] = f"goto {svc}"
    else:
        # Endpoints exist, but none this node may use (internalTrafficPolicy Local).
        for ip in port.cluster_ips:
            no_ep_ips[f"{ip} . {proto} . {port.port}"] = DROP
    if has_external:
        if not port.external_local:
            rules = ["jump mark-for-masquerade", f"goto {svc}"] if cluster else [DROP]
        else:
            rules = []
            if cluster:
                # Pods and the node itself are not "external": they keep the cluster path.
                if node.cluster_cidr:
                    rules.append(f"ip saddr {node.cluster_cidr} goto {svc}")
                rules += ["fib saddr type local jump mark-for-masquerade", f"fib saddr type local goto {svc}"]
            rules += _spread(port, local, used) if local else [DROP]
        unit.chains[ext] = tuple(rules)
        for ip in port.external_ips:
            ips[f"{ip} . {proto} . {port.port}"] = f"goto {ext}"
        if port.node_port:
            nodeports[f"{proto} . {port.node_port}"] = f"goto {ext}"
    for name, ep in used.items():
        aset = affinity_set(port, ep)
        unit.sets[aset] = port.affinity_seconds
        unit.chains[name] = (f"update @{aset} {{ ip saddr }}", f"meta l4proto {proto} dnat to {ep.ip}:{ep.port}")
    targets = frozenset(ep.ip for ep in (*cluster, *local))
    unit.endpoint_ips = targets
    if proto == "udp":
        unit.udp_endpoints = targets
    return unit


def render_units(ports: list[ServicePort], node: NodeView) -> dict[str, Unit]:
    return {p.key: render_unit(p, node) for p in ports}


# ------------------------------------------------------------------ scripts

def _base_chains(node: NodeView) -> list[str]:
    mark = hex(node.mark)
    others = (f'iifname != "{node.pod_interface}" ip daddr {node.service_cidr} return; '
              if node.pod_interface and node.service_cidr else "")
    return [
        f"chain nat-prerouting {{ type nat hook prerouting priority -100; policy accept; {others}jump services; }}",
        "chain nat-output { type nat hook output priority -100; policy accept; jump services; }",
        "chain nat-postrouting { type nat hook postrouting priority 100; policy accept; "
        f"ct status dnat ip saddr . ip daddr @{HAIRPIN} jump mark-for-masquerade; jump masquerading; }}",
        "chain filter-prerouting { type filter hook prerouting priority -110; policy accept; "
        f"{others}ct state new jump service-endpoints-check; }}",
        "chain filter-output { type filter hook output priority -110; policy accept; "
        "ct state new jump service-endpoints-check; }",
        f"chain service-endpoints-check {{ ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}; "
        f"ip daddr @{NODEPORT_IPS} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}; }}",
        f"chain services {{ ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}; "
        f"ip daddr @{NODEPORT_IPS} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}; }}",
        f"chain mark-for-masquerade {{ meta mark set meta mark or {mark}; }}",
        f"chain masquerading {{ meta mark & {mark} == 0 return; meta mark set meta mark xor {mark}; "
        + (f"ip daddr {node.cluster_cidr} snat ip to {node.pod_gateway} fully-random; "
           if node.cluster_cidr and node.pod_gateway else "")
        + "masquerade fully-random; }",
        "chain reject-chain { meta l4proto tcp reject with tcp reset; reject; }",
    ]


def _chain_order(name: str) -> int:
    """Endpoint chains before the chains that jump to them."""
    return 0 if name.startswith("endpoint-") else 1 if name.startswith("service-") else 2


def _set_decl(name: str, timeout: int) -> str:
    return f"set {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"


def _endpoint_ips(units: dict[str, Unit]) -> set[str]:
    return {ip for unit in units.values() for ip in unit.endpoint_ips}


def render_full(*, table: str, node: NodeView, units: dict[str, Unit]) -> str:
    """The whole table, replacing whatever table of that name exists, in one transaction."""
    out = [f"add table ip {table}", f"delete table ip {table}", f"table ip {table} {{"]
    ips = ", ".join(node.node_ips)
    out.append(f"  set {NODEPORT_IPS} {{ type ipv4_addr; " + (f"elements = {{ {ips} }}; " if ips else "") + "}")
    pairs = ", ".join(f"{ip} . {ip}" for ip in sorted(_endpoint_ips(units)))
    out.append(f"  set {HAIRPIN} {{ type ipv4_addr . ipv4_addr; "
               + (f"elements = {{ {pairs} }}; " if pairs else "") + "}")
    for unit in units.values():
        out += [f"  {_set_decl(n, t)}" for n, t in unit.sets.items()]
    chains = sorted(((n, r) for u in units.values() for n, r in u.chains.items()), key=lambda c: _chain_order(c[0]))
    for name, rules in chains:
        out.append(f"  chain {name} {{")
        out += [f"    {rule}" for rule in rules]
        out.append("  }")
    for name, key_type in MAPS.items():
        elements = [f"{k} : {v}" for u in units.values() for k, v in u.elements.get(name, {}).items()]
        body = f" elements = {{ {', '.join(elements)} }};" if elements else ""
        out.append(f"  map {name} {{ type {key_type} : verdict;{body} }}")
    out += [f"  {c}" for c in _base_chains(node)]
    out.append("}")
    return "\n".join(out) + "\n"


def render_diff(*, table: str, old: dict[str, Unit], new: dict[str, Unit],
                hairpin: tuple[list[str], list[str]] | None = None) -> str:
    """Only what changed between two renders, as one transaction ("" when nothing did).

    `hairpin` is (endpoint IPs no unit uses any more, IPs newly used) when the
    caller keeps count (ServiceProxy does, so a sync does not walk every
    endpoint); without it the two renders' unions are compared.

    Order matters to the kernel: map elements pointing at a chain go before the
    chain; chains are created (empty) before rules jump to them; a chain is
    deleted only once no rule or element refers to it.
    """
    t = f"ip {table}"
    keys = set(old) | set(new)
    touched: set[str] = set()
    empty = Unit()
    old_chains: dict[str, tuple[str, ...]] = {}
    new_chains: dict[str, tuple[str, ...]] = {}
    old_sets: dict[str, int] = {}
    new_sets: dict[str, int] = {}
    for key in keys:
        o, n = old.get(key, empty), new.get(key, empty)
        if o is n or o == n:
            continue
        touched.add(key)
        old_chains.update(o.chains)
        new_chains.update(n.chains)
        old_sets.update(o.sets)
        new_sets.update(n.sets)
    lines: list[str] = []
    adds: list[str] = []
    for name in MAPS:
        before = {k: v for key in touched for k, v in old.get(key, empty).elements.get(name, {}).items()}
        after = {k: v for key in touched for k, v in new.get(key, empty).elements.get(name, {}).items()}
        gone = [k for k, v in before.items() if after.get(k) != v]
        added = [f"{k} : {v}" for k, v in after.items() if before.get(k) != v]
        if gone:
            lines.append(f"delete element {t} {name} {{ {', '.join(gone)} }}")
        if added:
            adds.append(f"add element {t} {name} {{ {', '.join(added)} }}")
    for name, timeout in new_sets.items():
        if name not in old_sets:
            lines.append(f"add {_set_decl(name, timeout).replace('set ', f'set {t} ', 1)}")
    changed = [n for n, rules in new_chains.items() if old_chains.get(n) != rules]
    for name in changed:
        lines += [f"add chain {t} {name}", f"flush chain {t} {name}"]
    for name in sorted(changed, key=_chain_order):
        lines += [f"add rule {t} {name} {rule}" for rule in new_chains[name]]
    stale = [n for n in old_chains if n not in new_chains]
    lines += [f"flush chain {t} {name}" for name in stale]
    lines += [f"delete chain {t} {name}" for name in stale]
    lines += [f"delete set {t} {name}" for name in old_sets if name not in new_sets]
    lines += adds
    if touched:
        # Endpoints are shared between Services: the hairpin set follows the union.
        if hairpin is None:
            before_ips, after_ips = _endpoint_ips(old), _endpoint_ips(new)
            hairpin = (list(before_ips - after_ips), list(after_ips - before_ips))
        if gone := sorted(hairpin[0]):
            lines.append(f"delete element {t} {HAIRPIN} {{ {', '.join(f'{ip} . {ip}' for ip in gone)} }}")
        if added := sorted(hairpin[1]):
            lines.append(f"add element {t} {HAIRPIN} {{ {', '.join(f'{ip} . {ip}' for ip in added)} }}")
    return "\n".join(lines) + "\n" if lines else ""
