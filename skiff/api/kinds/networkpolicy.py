"""NetworkPolicy (networking.k8s.io/v1): which traffic the pods it selects may
receive (Ingress) and send (Egress). Each node's agent enforces the policies
of the pods it runs in its nftables table (agent/network/policy.py;
docs/architecture.md, decision 30); nothing here does I/O.

Defaults as Kubernetes' (SetDefaults_NetworkPolicy): protocol TCP on every
port; policyTypes, when left out, is Ingress, plus Egress when the policy has
egress rules. Checks as ValidateNetworkPolicySpec, with Kubernetes' field paths:
the selectors, each port (protocol TCP/UDP/SCTP; a port number 1-65535 or an
IANA service name; endPort only with a numeric port and not below it), each
peer (exactly one of ipBlock and pod/namespace selectors), ipBlock CIDRs
(`except` entries strictly inside `cidr`), policyTypes (Ingress, Egress, at
most both, no repeats).
"""
from __future__ import annotations

import ipaddress
import re
from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import networking_pb2
from skiff.api import describing, humanize, labelselector
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy
from skiff.api.validation import FieldError, quoted

INGRESS, EGRESS = "Ingress", "Egress"
POLICY_TYPES = (INGRESS, EGRESS)
PROTOCOLS = ("SCTP", "TCP", "UDP")
_IANA_SVC_NAME = re.compile(r"^[-a-z0-9]+$")


def policy_types(spec: Message) -> list[str]:
    """The policy's types: as written, else Kubernetes' default."""
    if spec.policy_types:
        return list(spec.policy_types)
    return [INGRESS, EGRESS] if len(spec.egress) else [INGRESS]


def port_name_error(name: str) -> str | None:
    """validation.IsValidPortName: an IANA service name."""
    if not 1 <= len(name) <= 15:
        return "must be no more than 15 characters"
    if not _IANA_SVC_NAME.match(name):
        return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
    if "--" in name:
        return "must not contain consecutive hyphens"
    if not any(c.isalpha() for c in name):
        return "must contain at least one letter (a-z)"
    if name.startswith("-") or name.endswith("-"):
        return "must not begin or end with a hyphen"
    return None


def _cidr(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def port_errors(port: Message, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if port.HasField("protocol") and port.protocol not in PROTOCOLS:
        errors.append(FieldError(f"{path}.protocol", f"Unsupported value: {quoted(port.protocol)}: supported "
                                                     f"values: " + ", ".join(quoted(p) for p in PROTOCOLS)))
    numeric = port.HasField("port") and port.port.isdigit()
    if port.HasField("port"):
        if numeric:
            if not 1 <= int(port.port) <= 65535:
                errors.append(FieldError(f"{path}.port", f"Invalid value: {port.port}: must be between 1 and "
                                                         "65535, inclusive"))
        elif problem := port_name_error(port.port):
            errors.append(FieldError(f"{path}.port", f"Invalid value: {quoted(port.port)}: {problem}"))
    if port.HasField("end_port"):
        if not port.HasField("port"):
            errors.append(FieldError(f"{path}.endPort", "Required value: may not be specified when `port` "
                                                        "is not specified"))
        elif not numeric:
            errors.append(FieldError(f"{path}.endPort", "Invalid value: may not be specified when `port` "
                                                        "is non-numeric"))
        elif port.end_port < int(port.port):
            errors.append(FieldError(f"{path}.endPort", f"Invalid value: {port.end_port}: must be greater than "
                                                        "or equal to `port`"))
        elif port.end_port > 65535:
            errors.append(FieldError(f"{path}.endPort", f"Invalid value: {port.end_port}: must be between 1 and "
                                                        "65535, inclusive"))
    return errors


def ip_block_errors(block: Message, path: str) -> list[FieldError]:
    if not block.cidr:
        return [FieldError(f"{path}.cidr", "Required value")]
    cidr = _cidr(block.cidr)
    if cidr is None:
        return [FieldError(f"{path}.cidr", f"Invalid value: {quoted(block.cidr)}: must be a valid CIDR "
                                           "(e.g. 10.9.8.0/24 or 2001:db8::/64)")]
    errors: list[FieldError] = []
    for i, text in enumerate(getattr(block, "except")):   # `except` is a Python keyword
        where = f"{path}.except[{i}]"
        inner = _cidr(text)
        if inner is None:
            errors.append(FieldError(where, f"Invalid value: {quoted(text)}: must be a valid CIDR "
                                            "(e.g. 10.9.8.0/24 or 2001:db8::/64)"))
        elif inner.version != cidr.version or not inner.subnet_of(cidr) or inner.prefixlen <= cidr.prefixlen:
            errors.append(FieldError(where, f"Invalid value: {quoted(text)}: must be a strict subset of `cidr`"))
    return errors


def peer_errors(peer: Message, path: str) -> list[FieldError]:
    kinds = [peer.HasField("pod_selector"), peer.HasField("namespace_selector"), peer.HasField("ip_block")]
    if not any(kinds):
        return [FieldError(path, "Required value: must specify a peer")]
    if kinds[2] and (kinds[0] or kinds[1]):
        return [FieldError(path, "Forbidden: may not specify more than 1 peer type")]
    errors: list[FieldError] = []
    if kinds[0]:
        errors += labelselector.validate(peer.pod_selector, f"{path}.podSelector")
    if kinds[1]:
        errors += labelselector.validate(peer.namespace_selector, f"{path}.namespaceSelector")
    if kinds[2]:
        errors += ip_block_errors(peer.ip_block, f"{path}.ipBlock")
    return errors


def spec_errors(spec: Message, path: str = "spec") -> list[FieldError]:
    """What is wrong with a NetworkPolicySpec (pure; the kind's rules)."""
    errors = labelselector.validate(spec.pod_selector, f"{path}.podSelector")
    for direction, peers_field, peers_name, rules in (("ingress", "from", "from", spec.ingress),
                                                       ("egress", "to", "to", spec.egress)):
        for i, rule in enumerate(rules):
            for j, port in enumerate(rule.ports):
                errors += port_errors(port, f"{path}.{direction}[{i}].ports[{j}]")
            for k, peer in enumerate(getattr(rule, peers_field)):
                errors += peer_errors(peer, f"{path}.{direction}[{i}].{peers_name}[{k}]")
    seen: set[str] = set()
    for i, kind in enumerate(spec.policy_types):
        if kind not in POLICY_TYPES:
            errors.append(FieldError(f"{path}.policyTypes[{i}]", f"Unsupported value: {quoted(kind)}: supported "
                                                                 'values: "Ingress", "Egress"'))
        elif kind in seen:
            errors.append(FieldError(f"{path}.policyTypes[{i}]", f"Duplicate value: {quoted(kind)}"))
        seen.add(kind)
    if len(spec.policy_types) > 2:
        errors.append(FieldError(f"{path}.policyTypes", "Invalid value: may not specify more than two policyTypes"))
    return errors


def _ports_text(ports) -> str:
    if not ports:
        return "<any> (traffic allowed to all ports)"
    out = []
    for p in ports:
        proto = p.protocol or "TCP"
        if not p.HasField("port"):
            out.append(f"<any>/{proto}")
        elif p.HasField("end_port"):
            out.append(f"{p.port}-{p.end_port}/{proto}")
        else:
            out.append(f"{p.port}/{proto}")
    return ", ".join(out)


def _peer_lines(peer: Message) -> list[str]:
    if peer.HasField("ip_block"):
        excepts = list(getattr(peer.ip_block, "except"))
        return ["IPBlock:", f"  CIDR: {peer.ip_block.cidr}", f"  Except: {', '.join(excepts)}"]
    lines = []
    if peer.HasField("pod_selector"):
        lines.append(f"PodSelector: {labelselector.to_text(peer.pod_selector)}")
    if peer.HasField("namespace_selector"):
        lines.append(f"NamespaceSelector: {labelselector.to_text(peer.namespace_selector)}")
    return lines


class NetworkPolicyStrategy(Strategy):
    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        for rule in [*obj.spec.ingress, *obj.spec.egress]:
            for port in rule.ports:
                if not port.HasField("protocol"):
                    port.protocol = "TCP"
        if not obj.spec.policy_types:
            obj.spec.policy_types.extend(policy_types(obj.spec))
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        return super().validate(obj) + spec_errors(obj.spec)

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "POD-SELECTOR", "AGE"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        selector = labelselector.to_text(obj.spec.pod_selector)
        return [obj.metadata.name, "<none>" if selector == "<none>" else selector,
                humanize.age(obj.metadata.creation_timestamp, now=now)]

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        m, spec = obj.metadata, obj.spec
        text.multiline("Name", m.name, width=17)
        text.multiline("Namespace", m.namespace, width=17)
        text.multiline("Created on", humanize.age(m.creation_timestamp, now=ctx.now) + " ago", width=17)
        text.multiline("Labels", describing.map_text(m.labels), width=17)
        text.multiline("Annotations", describing.map_text(m.annotations), width=17)
        text.line("Spec:")
        selector = labelselector.to_text(spec.pod_selector)
        text.line(f"  PodSelector:     {selector if selector != '<none>' else '<none> (Allowing the specific traffic to all pods in this namespace)'}")
        types = policy_types(spec)
        for kind, rules, peers_field, word in ((INGRESS, spec.ingress, "from", "From"),
                                               (EGRESS, spec.egress, "to", "To")):
            verb = "Allowing ingress traffic" if kind == INGRESS else "Allowing egress traffic"
            text.line(f"  {verb}:")
            if kind not in types:
                text.line("    <none> (Selected pods are isolated for ingress connectivity)"
                          if kind == INGRESS else "    <none> (Selected pods are isolated for egress connectivity)")
                continue
            if not rules:
                text.line(f"    <none> (Selected pods are isolated for {kind.lower()} connectivity)")
            for i, rule in enumerate(rules):
                if i:
                    text.line("    ----------")
                text.line(f"    To Port: {_ports_text(rule.ports)}")
                peers = getattr(rule, peers_field)
                if not peers:
                    text.line(f"    {word}: <any> (traffic not restricted by {'source' if kind == INGRESS else 'destination'})")
                for peer in peers:
                    text.line(f"    {word}:")
                    for line in _peer_lines(peer):
                        text.line(f"      {line}")
        text.line(f"  Policy Types: {', '.join(types)}")
        describing.events(text, ctx.events, now=ctx.now)
        return str(text)


KIND = Kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", "network_policy",
            networking_pb2.NetworkPolicy, True, ("networkpolicy", "netpol"), strategy=NetworkPolicyStrategy())
