"""The rendered nftables script, and that nft accepts it (checked, not applied)."""
from __future__ import annotations

import os
import subprocess

import pytest

from agent.network.nftables import TableSpec, render_script
from agent.network.state import NetworkState, PodRecord
from agent.network.types import PortMapping

SPEC = TableSpec(table="skiff_test_render", bridge="skiff-trender", pod_cidr="10.9.0.0/24", node_ip="10.9.0.1")


def _state() -> NetworkState:
    state = NetworkState(pod_cidr="10.9.0.0/24")
    state.pods["uid-a"] = PodRecord(ip="10.9.0.2", veth="skiffv00000001",
                                    ports=[PortMapping(5000, 80), PortMapping(5353, 53, "UDP", "127.0.0.1")])
    state.pods['evil" ; flush ruleset'] = PodRecord(ip="10.9.0.3", veth="skiffv00000002",
                                                    ports=[PortMapping(6000, 60)])
    return state


def test_rules_are_rendered_per_mapping_and_tagged_with_the_pod():
    script = render_script(spec=SPEC, state=_state())
    dnat = [line for line in script.splitlines() if " dnat ip to " in line]
    assert dnat == [  # pods in sorted order, mappings in the pod's order
        'add rule inet skiff_test_render hostports ip daddr { 10.9.0.1, 127.0.0.1 } tcp dport 6000 '
        'dnat ip to 10.9.0.3:60 comment "skiff pod evil_ _ flush ruleset"',
        'add rule inet skiff_test_render hostports ip daddr { 10.9.0.1, 127.0.0.1 } tcp dport 5000 '
        'dnat ip to 10.9.0.2:80 comment "skiff pod uid-a"',
        'add rule inet skiff_test_render hostports ip daddr { 127.0.0.1 } udp dport 5353 '
        'dnat ip to 10.9.0.2:53 comment "skiff pod uid-a"',
    ]
    # Every statement names Skiff's table only; a hostile pod id stays inside its comment.
    for line in script.splitlines():
        assert line.startswith(("table inet skiff_test_render {", "  chain ", "}",
                                "flush chain inet skiff_test_render ", "add rule inet skiff_test_render ")), line


@pytest.mark.root
def test_nft_accepts_the_script():
    if os.geteuid() != 0:
        pytest.skip("nft --check needs root")
    state = _state()
    state.forwarding_enabled_on = ["skiff-uplinkA"]
    for spec in (SPEC, TableSpec(table=SPEC.table, bridge=SPEC.bridge, pod_cidr=SPEC.pod_cidr, node_ip=SPEC.node_ip,
                                 uplinks=("skiff-uplinkA",))):
        done = subprocess.run(["nft", "--check", "-f", "-"], input=render_script(spec=spec, state=state),
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_uplink_rules_let_only_hostport_flows_cross_and_fence_what_skiff_enabled():
    state = _state()
    state.forwarding_enabled_on = ["skiff-uplinkA"]
    spec = TableSpec(table="skiff_test_render", bridge="skiff-trender", pod_cidr="10.9.0.0/24", node_ip="10.9.0.1",
                     uplinks=("skiff-uplinkA", "skiff-uplinkB"))
    forward = [line.split(" forward ", 1)[1] for line in render_script(spec=spec, state=state).splitlines()
               if line.startswith("add rule inet skiff_test_render forward ")]
    assert forward == [
        'iifname "skiff-trender" oifname "skiff-uplinkA" ct status dnat ct direction reply accept',
        'iifname "skiff-trender" oifname "skiff-uplinkB" ct status dnat ct direction reply accept',
        'iifname != "skiff-trender" oifname != "skiff-trender" ct status dnat accept',   # a NodePort relayed
        'iifname "skiff-trender" oifname != "skiff-trender" drop',
        'iifname "skiff-uplinkA" oifname "skiff-trender" ct status dnat ct direction original accept',
        'iifname "skiff-uplinkA" drop',   # Skiff turned its forwarding on: nothing else may pass
        'iifname "skiff-uplinkB" oifname "skiff-trender" ct status dnat ct direction original accept',
    ]


def _rules(script: str, chain: str) -> list[str]:
    return [line.split(f" {chain} ", 1)[1] for line in script.splitlines()
            if line.startswith(f"add rule inet skiff_test_render {chain} ")]


def test_egress_nat_masquerades_only_traffic_leaving_the_cluster():
    state = _state()
    state.forwarding_enabled_on = ["skiff-uplinkA", "eth9"]
    spec = TableSpec(table="skiff_test_render", bridge="skiff-trender", pod_cidr="10.9.0.0/24", node_ip="10.9.0.1",
                     uplinks=("skiff-uplinkA",), cluster_cidr="10.9.0.0/16", egress="nat",
                     service_cidr="10.96.0.0/16", egress_uplink="eth9")
    script = render_script(spec=spec, state=state)
    assert ('oifname "eth9" ip saddr 10.9.0.0/24 ip daddr != { 10.9.0.0/16, 10.96.0.0/16 } masquerade'
            in _rules(script, "postrouting"))
    forward = _rules(script, "forward")
    # Out by the egress uplink alone (not by any other interface), and back.
    out = ('iifname "skiff-trender" oifname "eth9" ip saddr 10.9.0.0/24 '
           'ip daddr != { 10.9.0.0/16, 10.96.0.0/16 } accept')
    back = ('iifname "eth9" oifname "skiff-trender" ip daddr 10.9.0.0/24 '
            'ct status snat ct state established,related accept')
    fence = 'iifname "skiff-trender" oifname != "skiff-trender" drop'
    assert forward.index(out) < forward.index(back) < forward.index(fence)
    # The egress uplink Skiff turned forwarding on for forwards nothing but those replies.
    assert forward[-1] == 'iifname "eth9" drop'


def test_egress_none_keeps_the_fence_and_no_source_nat():
    spec = TableSpec(table="skiff_test_render", bridge="skiff-trender", pod_cidr="10.9.0.0/24", node_ip="10.9.0.1",
                     egress="none", service_cidr="10.96.0.0/16")
    script = render_script(spec=spec, state=_state())
    assert not any("masquerade" in rule and "ct status dnat" not in rule for rule in _rules(script, "postrouting"))
    assert _rules(script, "forward") == [
        # ... but for the API through the `kubernetes` Service (decision 35; test below).
        'iifname "skiff-trender" oifname != "skiff-trender" ct original ip daddr 10.96.0.1 accept',
        'iifname != "skiff-trender" oifname "skiff-trender" ct original ip daddr 10.96.0.1 ct direction reply accept',
        'iifname "skiff-trender" oifname != "skiff-trender" drop']


def test_pods_reach_the_api_service_whatever_the_egress():
    """The `kubernetes` Service's endpoint is the control plane on the node's link (decision 35): a
    pod's flow to its cluster IP (the service range's first address), DNAT'd there by the service
    proxy, leaves masqueraded and its replies come back, before the fence; nothing else does."""
    spec = TableSpec(table="skiff_test_render", bridge="skiff-trender", pod_cidr="10.9.0.0/24", node_ip="10.9.0.1",
                     uplinks=("skiff-uplinkA",), cluster_cidr="10.9.0.0/16", egress="none",
                     service_cidr="10.96.0.0/16")
    state = _state()
    state.forwarding_enabled_on = ["skiff-uplinkA"]
    script = render_script(spec=spec, state=state)
    assert ('oifname != "skiff-trender" ip saddr 10.9.0.0/24 ct status dnat ct original ip daddr 10.96.0.1 '
            'masquerade') in _rules(script, "postrouting")
    forward = _rules(script, "forward")
    api_out = forward.index('iifname "skiff-trender" oifname != "skiff-trender" ct original ip daddr 10.96.0.1 accept')
    api_back = forward.index('iifname != "skiff-trender" oifname "skiff-trender" ct original ip daddr 10.96.0.1 '
                             'ct direction reply accept')
    assert max(api_out, api_back) < forward.index('iifname "skiff-trender" oifname != "skiff-trender" drop')
    assert max(api_out, api_back) < forward.index('iifname "skiff-uplinkA" drop')
    no_services = TableSpec(table="skiff_test_render", bridge="skiff-trender", pod_cidr="10.9.0.0/24",
                            node_ip="10.9.0.1")
    assert "ct original" not in render_script(spec=no_services, state=_state())


def test_egress_without_a_cluster_cidr_keeps_the_nodes_own_pods_unnated():
    spec = TableSpec(table="skiff_test_render", bridge="skiff-trender", pod_cidr="10.9.0.0/24", node_ip="10.9.0.1",
                     egress="nat")
    assert 'oifname != "skiff-trender" ip saddr 10.9.0.0/24 ip daddr != { 10.9.0.0/24 } masquerade' in \
        render_script(spec=spec, state=_state())


@pytest.mark.root
def test_nft_accepts_the_egress_script():
    if os.geteuid() != 0:
        pytest.skip("nft --check needs root")
    state = _state()
    state.forwarding_enabled_on = ["eth9"]
    spec = TableSpec(table="skiff_test_render", bridge="skiff-trender", pod_cidr="10.9.0.0/24", node_ip="10.9.0.1",
                     uplinks=("skiff-uplinkA",), cluster_cidr="10.9.0.0/16", egress="nat",
                     service_cidr="10.96.0.0/16")
    done = subprocess.run(["nft", "--check", "-f", "-"], input=render_script(spec=spec, state=state),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
