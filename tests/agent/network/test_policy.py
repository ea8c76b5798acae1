"""NetworkPolicy rules rendered for a node's pods (pure), and that nft accepts them."""
from __future__ import annotations

import os
import subprocess

import pytest

from agent.network.policy import PodInfo, plan, pod_info, policy_view, render_script
from skiff.api import manifest

NAMESPACES = {"default": {"kubernetes.io/metadata.name": "default"},
              "team-a": {"kubernetes.io/metadata.name": "team-a", "team": "a"}}
DB = PodInfo("default", "db", "10.1.0.2", {"role": "db"}, (("redis", 6379, "TCP"),))
WEB = PodInfo("default", "web", "10.1.1.2", {"role": "web"}, (("http", 8080, "TCP"),))
OTHER = PodInfo("default", "other", "10.1.1.3", {"role": "other"})
A_WEB = PodInfo("team-a", "web", "10.1.2.2", {"role": "web"})
PODS = [DB, WEB, OTHER, A_WEB]


def _policy(spec: str, namespace: str = "default"):
    (doc,) = manifest.parse_text(f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                                 f"metadata: {{name: p, namespace: {namespace}}}\nspec:\n{spec}", source="np.yaml")
    assert doc.ok, doc.errors
    return doc.obj


def _script(*specs: str, local: set[str] = frozenset({DB.ip})) -> list[str]:
    rules = plan(policies=[_policy(s) for s in specs], pods=PODS, namespaces=NAMESPACES, local_ips=set(local))
    return [line.removeprefix("add rule inet skiff_np ") for line in
            render_script(table="skiff_np", bridge="skiff-np0", rules=rules).splitlines()
            if line.startswith("add rule inet skiff_np np-in") or line.startswith("add rule inet skiff_np np-eg")]


def test_no_policy_no_isolation():
    assert _script() == ['np-input iifname "skiff-np0" ct state new meta l4proto { tcp, udp } th dport 53 '
                         'jump np-egress']


def test_default_deny_ingress_drops_everything_to_the_selected_pod():
    assert _script("  podSelector: {}\n  policyTypes: [Ingress]")[1:] == [
        'np-ingress ip daddr 10.1.0.2 drop comment "np pod default/db"']


def test_a_pod_selector_allows_only_its_pods_of_the_policys_namespace_on_the_named_port():
    rules = _script("  podSelector: {matchLabels: {role: db}}\n  ingress:\n"
                    "  - from: [{podSelector: {matchLabels: {role: web}}}]\n    ports: [{port: redis}]")
    assert rules[1:] == [
        'np-ingress ip daddr 10.1.0.2 ip saddr { 10.1.1.2 } tcp dport 6379 accept comment "np default/p"',
        'np-ingress ip daddr 10.1.0.2 drop comment "np pod default/db"']


def test_namespace_and_pod_selector_together_are_an_and():
    both = _script("  podSelector: {}\n  ingress:\n  - from:\n"
                   "    - {namespaceSelector: {matchLabels: {team: a}}, podSelector: {matchLabels: {role: web}}}")
    assert 'ip saddr { 10.1.2.2 } accept' in both[1]
    apart = _script("  podSelector: {}\n  ingress:\n  - from:\n"
                    "    - {namespaceSelector: {matchLabels: {team: a}}}\n    - {podSelector: {matchLabels: {role: web}}}")
    assert ['ip saddr { 10.1.2.2 } accept' in r for r in apart[1:3]] == [True, False]
    assert 'ip saddr { 10.1.1.2 } accept' in apart[2]


def test_egress_ip_block_with_except_and_port_range_and_dns_only_when_allowed():
    rules = _script("  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n"
                    "  - to: [{ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}}]\n"
                    "    ports: [{port: 8000, endPort: 8100}, {protocol: UDP, port: 53}]")
    assert rules[1:] == [
        'np-egress ip saddr 10.1.0.2 ip daddr 192.0.2.0/24 ip daddr != { 192.0.2.128/25 } tcp dport 8000-8100 '
        'return comment "np default/p"',
        'np-egress ip saddr 10.1.0.2 ip daddr 192.0.2.0/24 ip daddr != { 192.0.2.128/25 } udp dport 53 '
        'return comment "np default/p"',
        'np-egress ip saddr 10.1.0.2 drop comment "np pod default/db"']


def test_egress_to_a_named_port_resolves_against_each_peer_pod():
    rules = _script("  podSelector: {matchLabels: {role: db}}\n  policyTypes: [Egress]\n  egress:\n"
                    "  - ports: [{port: http}]")
    assert rules[1] == 'np-egress ip saddr 10.1.0.2 ip daddr { 10.1.1.2 } tcp dport 8080 return comment "np default/p"'


def test_only_this_nodes_selected_pods_get_rules_and_policies_add_up():
    rules = _script("  podSelector: {}\n  policyTypes: [Ingress]",
                    "  podSelector: {}\n  ingress: [{from: [{podSelector: {matchLabels: {role: web}}}]}]",
                    local={DB.ip, WEB.ip})
    assert [r.split(" comment")[0] for r in rules[1:]] == [
        "np-ingress ip daddr 10.1.0.2 ip saddr { 10.1.1.2 } accept", "np-ingress ip daddr 10.1.0.2 drop",
        "np-ingress ip daddr 10.1.1.2 ip saddr { 10.1.1.2 } accept", "np-ingress ip daddr 10.1.1.2 drop"]


def test_a_selector_that_matches_no_pod_allows_nothing():
    rules = _script("  podSelector: {}\n  ingress: [{from: [{podSelector: {matchLabels: {role: ghost}}}]}]")
    assert rules[1:] == ['np-ingress ip daddr 10.1.0.2 drop comment "np pod default/db"']


@pytest.mark.root
def test_nft_accepts_the_policy_script():
    if os.geteuid() != 0:
        pytest.skip("nft --check needs root")
    specs = ["  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  - from: [{podSelector: {}}]\n"
             "    ports: [{port: redis}, {protocol: UDP}]\n  egress:\n"
             "  - to: [{ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}}]\n"
             "    ports: [{port: 8000, endPort: 8100}, {protocol: SCTP, port: 9}]\n  - {}"]
    rules = plan(policies=[_policy(s) for s in specs], pods=PODS, namespaces=NAMESPACES, local_ips={DB.ip, WEB.ip})
    script = render_script(table="skiff_np", bridge="skiff-np0", rules=rules)
    done = subprocess.run(["nft", "--check", "-f", "-"], input=script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + script


POD = """apiVersion: v1
kind: Pod
metadata: {name: web, namespace: team-a, labels: {role: web, tier: front}, annotations: {note: long text}}
spec:
  nodeName: n1
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
    env: [{name: A, value: b}]
    ports: [{name: http, containerPort: 8080}, {containerPort: 9090}]
    readinessProbe: {httpGet: {path: /, port: http}}
  - {name: side, image: busybox, ports: [{name: metrics, containerPort: 9100, protocol: UDP}]}
"""


@pytest.mark.parametrize("phase, host_network", [("Running", False), ("Succeeded", False), ("Running", True)])
def test_the_policy_informer_keeps_only_what_the_policies_read(phase, host_network):
    (doc,) = manifest.parse_text(POD, source="pod.yaml")
    assert doc.ok, doc.errors
    pod = doc.obj
    pod.metadata.resource_version, pod.metadata.uid = "42", "u-1"
    pod.spec.host_network = host_network
    pod.status.phase, pod.status.pod_ip, pod.status.host_ip = phase, "10.1.2.7", "192.0.2.1"
    view = policy_view(pod)
    assert pod_info(view) == pod_info(pod)
    assert pod_info(view).ports == (("http", 8080, "TCP"), ("metrics", 9100, "UDP"))
    assert (view.metadata.resource_version, view.spec.node_name) == ("42", "n1")   # the informer compares versions
    assert not view.metadata.annotations and not view.spec.containers[0].env and not view.status.host_ip
