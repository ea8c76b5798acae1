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
    done = subprocess.run(["nft", "--check", "-f", "-"], input=render_script(spec=SPEC, state=_state()),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
