"""NetworkPolicy enforcement on the pod's node, in Skiff's own nftables table
(docs/architecture.md, decision 30).

Pure part (`plan` and `render_script`): from the NetworkPolicies, every pod's
address and labels, the namespaces' labels and the IPs of the pods this node
runs, the chains below. `apply` writes them in one `nft -f` transaction that
flushes only these chains (the rest of the table is the PodNetworkManager's).

    np-forward (filter, forward, priority 10)  ct state established,related accept
                                               jump np-egress ; jump np-ingress
    np-input   (filter, input, priority 10)    from the bridge to the node's DNS (port 53):
                                               jump np-egress (DNS to the node's resolver only
                                               when a policy allows it, as Kubernetes documents)
    np-egress   per egress-isolated pod P: ip saddr P <peer daddr> <port> return ... ; ip saddr P drop
    np-ingress  per ingress-isolated pod P: ip daddr P <peer saddr> <port> accept ... ; ip daddr P drop

A pod is isolated for a direction when a policy of its namespace selects it
with that policyType; what any of those policies' rules allow is allowed
(the union), the rest of that direction is dropped. Peers: podSelector (the
policy's namespace), namespaceSelector (any pod there), both (AND), ipBlock
(cidr minus except). Ports: numbers, ranges (endPort), names resolved against
the destination pod's container ports (ingress: the selected pod; egress: each
peer pod). Replies and related packets of an allowed connection pass.
Traffic the node itself sends or receives (but DNS) is not policed, as in
Kubernetes (probes, the agent). The verdicts are made where packets are
routed: across nodes and to the world; two pods on one bridge are bridged,
not routed, and this table does not see them (decision 30).
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from agent.network.nftables import _quote, run_nft
from skiff.api import labelselector

INGRESS, EGRESS = "Ingress", "Egress"
CHAINS = ("np-forward", "np-input", "np-egress", "np-ingress")
PRIORITY = 10   # after Skiff's forward chain (0): its fence drops first; an accept there does not skip these


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str]
    # (name, port, protocol) of the pod's container ports that have a name
    ports: tuple[tuple[str, int, str], ...] = ()


@dataclass(frozen=True)
class Peer:
    """A remote address match: pod IPs, or a CIDR less its exceptions; ips=() with no cidr matches nothing."""
    ips: tuple[str, ...] = ()
    cidr: str = ""
    excepts: tuple[str, ...] = ()

    def match(self, side: str) -> str:
        if self.cidr:
            text = f"ip {side} {self.cidr}"
            if self.excepts:
                text += f" ip {side} != {{ {', '.join(self.excepts)} }}"
            return text
        return f"ip {side} {{ {', '.join(self.ips)} }}"


@dataclass(frozen=True)
class Allow:
    peer: Peer | None            # None: any address
    protocol: str = ""           # "" with port 0: any protocol and port
    port: int = 0                # 0: every port of the protocol
    end_port: int = 0
    origin: str = ""             # "NS/NAME" of the policy

    def match(self, *, side: str) -> str:
        parts = [self.peer.match(side)] if self.peer is not None else []
        proto = self.protocol.lower()
        if proto and self.port:
            parts.append(f"{proto} dport {self.port}" + (f"-{self.end_port}" if self.end_port > self.port else ""))
        elif proto:
            parts.append(f"meta l4proto {proto}")
        return " ".join(parts)


@dataclass
class PodRules:
    ip: str
    pod: str                      # "NS/NAME"
    ingress: list[Allow] | None = None   # None: not isolated for ingress
    egress: list[Allow] | None = None


def _types(spec) -> list[str]:
    if spec.policy_types:
        return list(spec.policy_types)
    return [INGRESS, EGRESS] if len(spec.egress) else [INGRESS]


def _peer_pods(peer, *, policy_ns: str, pods: Sequence[PodInfo], namespaces: Mapping[str, Mapping[str, str]]):
    if peer.HasField("namespace_selector"):
        in_ns = [p for p in pods if labelselector.matches(peer.namespace_selector, namespaces.get(p.namespace, {}))]
    else:
        in_ns = [p for p in pods if p.namespace == policy_ns]
    if peer.HasField("pod_selector"):
        in_ns = [p for p in in_ns if labelselector.matches(peer.pod_selector, p.labels)]
    return in_ns


def _ip_block(block) -> Peer | None:
    try:
        cidr = ipaddress.ip_network(block.cidr, strict=False)
    except ValueError:
        return None
    if cidr.version != 4:
        return None   # pods are IPv4 only
    excepts = tuple(str(ipaddress.ip_network(e, strict=False)) for e in getattr(block, "except"))
    return Peer(cidr=str(cidr), excepts=excepts)


def _named(pod: PodInfo, name: str, protocol: str) -> int:
    for port_name, number, proto in pod.ports:
        if port_name == name and proto == protocol:
            return number
    return 0


def _rule_allows(rule, *, direction: str, policy, target: PodInfo, pods: Sequence[PodInfo],
                 namespaces: Mapping[str, Mapping[str, str]]) -> list[Allow]:
    origin = f"{policy.metadata.namespace}/{policy.metadata.name}"
    peers_field = "from" if direction == INGRESS else "to"
    peers = list(getattr(rule, peers_field))
    # Each peer as (Peer, the pods behind it or None for an ipBlock); [] peers: any address.
    resolved: list[tuple[Peer | None, list[PodInfo] | None]] = []
    if not peers:
        resolved.append((None, list(pods)))
    for peer in peers:
        if peer.HasField("ip_block"):
            block = _ip_block(peer.ip_block)
            if block is not None:
                resolved.append((block, None))
        else:
            members = [p for p in _peer_pods(peer, policy_ns=policy.metadata.namespace, pods=pods,
                                             namespaces=namespaces) if p.ip]
            if members:
                resolved.append((Peer(ips=tuple(sorted({p.ip for p in members}))), members))
    out: list[Allow] = []
    ports = list(rule.ports) or [None]
    for peer, members in resolved:
        for port in ports:
            if port is None:
                out.append(Allow(peer=peer, origin=origin))
                continue
            protocol = port.protocol or "TCP"
            if not port.HasField("port"):
                out.append(Allow(peer=peer, protocol=protocol, origin=origin))
            elif port.port.isdigit():
                out.append(Allow(peer=peer, protocol=protocol, port=int(port.port),
                                 end_port=port.end_port if port.HasField("end_port") else 0, origin=origin))
            elif direction == INGRESS:
                # A name: the selected pod's own container port of that name.
                if number := _named(target, port.port, protocol):
                    out.append(Allow(peer=peer, protocol=protocol, port=number, origin=origin))
            elif members is not None:
                # Egress to a named port: each peer pod's own port of that name.
                by_number: dict[int, list[str]] = {}
                for member in members:
                    if number := _named(member, port.port, protocol):
                        by_number.setdefault(number, []).append(member.ip)
                for number, ips in sorted(by_number.items()):
                    out.append(Allow(peer=Peer(ips=tuple(sorted(set(ips)))), protocol=protocol, port=number,
                                     origin=origin))
    return out


def plan(*, policies: Iterable, pods: Sequence[PodInfo], namespaces: Mapping[str, Mapping[str, str]],
         local_ips: set[str]) -> list[PodRules]:
    """What each of this node's pods may receive and send (pure)."""
    policies = sorted(policies, key=lambda p: (p.metadata.namespace, p.metadata.name))
    out: list[PodRules] = []
    for pod in sorted((p for p in pods if p.ip in local_ips), key=lambda p: (p.ip, p.namespace, p.name)):
        rules = PodRules(ip=pod.ip, pod=f"{pod.namespace}/{pod.name}")
        for policy in policies:
            if policy.metadata.namespace != pod.namespace:
                continue
            if not labelselector.matches(policy.spec.pod_selector, pod.labels):
                continue
            types = _types(policy.spec)
            for direction, rule_list in ((INGRESS, policy.spec.ingress), (EGRESS, policy.spec.egress)):
                if direction not in types:
                    continue
                allows = rules.ingress if direction == INGRESS else rules.egress
                if allows is None:
                    allows = []
                    if direction == INGRESS:
                        rules.ingress = allows
                    else:
                        rules.egress = allows
                for rule in rule_list:
                    allows += _rule_allows(rule, direction=direction, policy=policy, target=pod, pods=pods,
                                           namespaces=namespaces)
        if rules.ingress is not None or rules.egress is not None:
            out.append(rules)
    return out


def render_script(*, table: str, bridge: str, rules: Sequence[PodRules]) -> str:
    t = f"inet {table}"
    lines = [
        f"table {t} {{",
        f"  chain np-forward {{ type filter hook forward priority {PRIORITY}; policy accept; }}",
        f"  chain np-input {{ type filter hook input priority {PRIORITY}; policy accept; }}",
        "  chain np-egress { }",
        "  chain np-ingress { }",
        "}",
    ]
    lines += [f"flush chain {t} {chain}" for chain in CHAINS]
    lines += [
        f"add rule {t} np-forward ct state established,related accept",
        f"add rule {t} np-forward jump np-egress",
        f"add rule {t} np-forward jump np-ingress",
        f"add rule {t} np-input iifname {_quote(bridge)} ct state new meta l4proto {{ tcp, udp }} th dport 53 "
        "jump np-egress",
    ]
    for pod in rules:
        comment = _quote(f"np pod {pod.pod}")
        if pod.egress is not None:
            for allow in pod.egress:
                lines.append(f"add rule {t} np-egress ip saddr {pod.ip} {allow.match(side='daddr')} return "
                             f"comment {_quote('np ' + allow.origin)}".replace("  ", " "))
            lines.append(f"add rule {t} np-egress ip saddr {pod.ip} drop comment {comment}")
        if pod.ingress is not None:
            for allow in pod.ingress:
                lines.append(f"add rule {t} np-ingress ip daddr {pod.ip} {allow.match(side='saddr')} accept "
                             f"comment {_quote('np ' + allow.origin)}".replace("  ", " "))
            lines.append(f"add rule {t} np-ingress ip daddr {pod.ip} drop comment {comment}")
    return "\n".join(lines) + "\n"


def apply(*, table: str, bridge: str, rules: Sequence[PodRules]) -> None:
    """Make the policy chains equal to `rules`, in one transaction."""
    run_nft(["-f", "-"], script=render_script(table=table, bridge=bridge, rules=rules))


def pod_info(pod) -> PodInfo:
    """A Pod object's part that policies look at."""
    ports = tuple((p.name, p.container_port, p.protocol or "TCP")
                  for c in pod.spec.containers for p in c.ports if p.name)
    # A hostNetwork pod has the node's address: no policy applies to it (as in Kubernetes).
    ip = "" if pod.spec.host_network or pod.status.phase in ("Succeeded", "Failed") else pod.status.pod_ip
    return PodInfo(namespace=pod.metadata.namespace, name=pod.metadata.name, ip=ip,
                   labels=dict(pod.metadata.labels), ports=ports)


def policy_view(pod):
    """What pod_info reads of a Pod: all the agent's informer of every pod in the cluster keeps
    (client-go's transform), a tenth of a decoded Pod."""
    view = type(pod)()
    m = view.metadata
    m.name, m.namespace, m.uid, m.resource_version = (pod.metadata.name, pod.metadata.namespace,
                                                      pod.metadata.uid, pod.metadata.resource_version)
    m.labels.update(pod.metadata.labels)
    view.spec.node_name, view.spec.host_network = pod.spec.node_name, pod.spec.host_network
    for c in pod.spec.containers:
        named = [p for p in c.ports if p.name]
        if named:
            view.spec.containers.add(name=c.name).ports.extend(named)
    view.status.phase, view.status.pod_ip = pod.status.phase, pod.status.pod_ip
    return view


# ---------------------------------------------------------------- the agent's loop

SYNC_KEY = "networkpolicies"
MIN_INTERVAL_SECONDS = 0.5
RESYNC_SECONDS = 300.0


def policy_controller(*, informers, node_name: str, table: str, bridge: str, **kwargs):
    """NetworkPolicy, Pod and Namespace informers -> the policy chains of this node's table."""
    import asyncio
    import logging
    import time

    from skiff.controller import Controller

    log = logging.getLogger(__name__)

    class NetworkPolicyController(Controller):
        name = "networkpolicy"

        def __init__(self) -> None:
            super().__init__(**kwargs)
            self.policies = informers.informer("NetworkPolicy")
            self.pods = informers.informer("Pod", transform=policy_view)
            self.namespaces = informers.informer("Namespace")
            for informer in (self.policies, self.pods, self.namespaces):
                informer.add_handler(lambda _key: self.enqueue(SYNC_KEY))
                self.uses(informer)
            self.written: str | None = None
            self._last = 0.0

        async def started(self) -> list[asyncio.Task]:
            self.enqueue(SYNC_KEY)
            return []

        async def reconcile(self, key) -> float | None:
            now = time.monotonic()
            if now - self._last < MIN_INTERVAL_SECONDS:
                return MIN_INTERVAL_SECONDS - (now - self._last)   # coalesce a burst of changes
            self._last = now
            policies = self.policies.lister.list()
            rules: list[PodRules] = []
            if policies:   # none (the usual cluster): no pod is isolated, whatever the pods are
                objects = self.pods.lister.list()
                pods = [pod_info(p) for p in objects]
                local = {info.ip for p, info in zip(objects, pods) if p.spec.node_name == node_name} - {""}
                namespaces = {n.metadata.name: {**n.metadata.labels, "kubernetes.io/metadata.name": n.metadata.name}
                              for n in self.namespaces.lister.list()}
                rules = plan(policies=policies, pods=[p for p in pods if p.ip], namespaces=namespaces,
                             local_ips=local)
            script = render_script(table=table, bridge=bridge, rules=rules)
            if script != self.written:
                await asyncio.to_thread(run_nft, ["-f", "-"], script)
                self.written = script
                log.info("network policies: %d pod(s) of this node isolated", len(rules))
            return RESYNC_SECONDS

    return NetworkPolicyController()
