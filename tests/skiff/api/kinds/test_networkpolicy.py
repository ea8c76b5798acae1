"""NetworkPolicy kind: the docs' manifest, defaults, the spec rules with their field paths, kubectl's columns."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from skiff.api import kinds, manifest

DOCS = Path(__file__).resolve().parents[3] / "fixtures" / "kubernetes-docs"
KIND = kinds.kind_named("NetworkPolicy")


def _np(spec: str):
    (doc,) = manifest.parse_text(f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: p}}
spec:
{spec}
""", source="np.yaml")
    return doc


def _errors(doc) -> list[tuple[str, str]]:
    return [(e.path, e.message) for e in doc.errors]


def test_the_docs_policy_parses_with_its_aliases():
    (doc,) = manifest.load([str(DOCS / "service" / "networking" / "networkpolicy.yaml")])
    assert doc.ok, doc.errors
    spec = doc.obj.spec
    assert dict(spec.pod_selector.match_labels) == {"role": "db"}
    ingress_from = getattr(spec.ingress[0], "from")
    assert ingress_from[0].ip_block.cidr == "172.17.0.0/16"
    assert list(getattr(ingress_from[0].ip_block, "except")) == ["172.17.1.0/24"]
    assert spec.ingress[0].ports[0].port == "6379"        # a YAML integer kept as its text
    assert spec.egress[0].ports[0].end_port == 6000
    assert kinds.kind_for_resource("netpol") is KIND
    assert kinds.kind_for_resource("networkpolicies") is KIND


def test_policy_types_and_protocol_default_as_kubernetes():
    only_ingress = KIND.strategy.defaults(_np("  podSelector: {}\n  ingress: [{ports: [{port: 80}]}]").obj)
    assert list(only_ingress.spec.policy_types) == ["Ingress"]
    assert only_ingress.spec.ingress[0].ports[0].protocol == "TCP"
    both = KIND.strategy.defaults(_np("  podSelector: {}\n  egress: [{to: [{podSelector: {}}]}]").obj)
    assert list(both.spec.policy_types) == ["Ingress", "Egress"]


def test_cidrs_are_checked_with_their_field_paths():
    doc = _np("  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/33}\n"
              "  egress:\n  - to:\n    - ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.0/24, 10.1.0.0/24, nonsense,"
              " 10.0.0.0/16]}\n    - ipBlock: {}")
    assert _errors(doc) == [
        ("spec.ingress[0].from[0].ipBlock.cidr",
         'Invalid value: "10.0.0.0/33": must be a valid CIDR (e.g. 10.9.8.0/24 or 2001:db8::/64)'),
        ("spec.egress[0].to[0].ipBlock.except[1]", 'Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`'),
        ("spec.egress[0].to[0].ipBlock.except[2]",
         'Invalid value: "nonsense": must be a valid CIDR (e.g. 10.9.8.0/24 or 2001:db8::/64)'),
        ("spec.egress[0].to[0].ipBlock.except[3]", 'Invalid value: "10.0.0.0/16": must be a strict subset of `cidr`'),
        ("spec.egress[0].to[1].ipBlock.cidr", "Required value"),
    ]


def test_ports_and_end_ports():
    doc = _np("  podSelector: {}\n  ingress:\n  - ports:\n    - {port: 0}\n    - {port: http, endPort: 90}\n"
              "    - {port: 90, endPort: 80}\n    - {endPort: 80}\n    - {port: Bad_Name}\n    - {protocol: ICMP}\n"
              "    - {port: 8000, endPort: 9000}\n    - {port: web}")
    assert _errors(doc) == [
        ("spec.ingress[0].ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
        ("spec.ingress[0].ports[1].endPort", "Invalid value: may not be specified when `port` is non-numeric"),
        ("spec.ingress[0].ports[2].endPort", "Invalid value: 80: must be greater than or equal to `port`"),
        ("spec.ingress[0].ports[3].endPort", "Required value: may not be specified when `port` is not specified"),
        ("spec.ingress[0].ports[4].port", 'Invalid value: "Bad_Name": must contain only alpha-numeric characters '
                                          '(a-z, 0-9), and hyphens (-)'),
        ("spec.ingress[0].ports[5].protocol", 'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'),
    ]


def test_peers_and_policy_types():
    doc = _np("  podSelector: {matchExpressions: [{key: a, operator: Near}]}\n"
              "  policyTypes: [Ingress, Sideways, Ingress]\n  ingress:\n  - from:\n    - {}\n"
              "    - {ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}\n"
              "    - {podSelector: {matchLabels: {a: b}}, namespaceSelector: {matchLabels: {team: x}}}")
    assert _errors(doc) == [
        ("spec.podSelector.matchExpressions[0].operator",
         "Unsupported value: 'Near': supported values: 'In', 'NotIn', 'Exists', 'DoesNotExist'"),
        ("spec.ingress[0].from[0]", "Required value: must specify a peer"),
        ("spec.ingress[0].from[1]", "Forbidden: may not specify more than 1 peer type"),
        ("spec.policyTypes[1]", 'Unsupported value: "Sideways": supported values: "Ingress", "Egress"'),
        ("spec.policyTypes[2]", 'Duplicate value: "Ingress"'),
        ("spec.policyTypes", "Invalid value: may not specify more than two policyTypes"),
    ]


def test_columns_are_kubectls():
    doc = _np("  podSelector: {matchLabels: {role: db}}")
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert KIND.strategy.columns(wide=False) == ["NAME", "POD-SELECTOR", "AGE"]
    assert KIND.strategy.row(doc.obj, wide=False, now=now)[:2] == ["p", "role=db"]
    every = _np("  podSelector: {}")
    assert KIND.strategy.row(every.obj, wide=False, now=now)[:2] == ["p", "<none>"]
