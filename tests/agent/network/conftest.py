"""Fixtures for pod-networking tests on the real kernel, as root.

`net` (function): a PodNetworkManager on a unique bridge (`skiff-t<hex>`), a
    unique nftables table (`skiff_test_<hex>`), an unused 10.250.X.0/24 pod CIDR
    and a private state dir, with ensure_node_network() done; node_ip is the
    bridge gateway (tests never send traffic to the host's own interfaces).
`net_factory` (function): make(**overrides) -> another such manager (e.g. with
    uplinks=... and a node_ip of the test's own).
`make_pod_netns` (function): make_pod_netns() -> NetnsHandle, a fresh
    `ip netns add skiff-test-<hex>` standing in for a pod's pinned namespace.
`spawn_in_netns` (function): start a process inside a namespace; stopped by PID.
Teardown (always, also after a failure): processes killed by PID, teardown_node(),
then whatever is left of the bridge, its veths and the table removed by name,
and the namespaces deleted. Helpers (servers, clients, leak checks) are in netlab.py.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import subprocess
from pathlib import Path
import pytest

from agent.network import PodNetworkManager
from tests.agent.network.netlab import NetnsHandle, unused_pod_cidr


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, bridges, nftables)")


@pytest.fixture
def make_pod_netns():
    _needs_root()
    made: list[NetnsHandle] = []

    def make() -> NetnsHandle:
        name = f"skiff-test-{secrets.token_hex(4)}"
        handle = NetnsHandle(name=name, path=Path("/run/netns") / name)
        made.append(handle)  # before it exists, so nothing can come between creation and cleanup
        subprocess.run(["ip", "netns", "add", name], check=True)
        return handle

    try:
        yield make
    finally:
        for handle in made:
            pids = subprocess.run(["ip", "netns", "pids", handle.name], capture_output=True, text=True).stdout
            for pid in pids.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
            subprocess.run(["ip", "netns", "del", handle.name], check=False)


@pytest.fixture
def spawn_in_netns():
    """spawn(netns, *argv) -> Popen with stdout piped; every one killed by PID afterwards."""
    procs: list[subprocess.Popen] = []

    def spawn(netns: NetnsHandle, *argv: str) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", netns.name, *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc

    try:
        yield spawn
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def _remove_network(manager: PodNetworkManager) -> None:
    try:
        manager.teardown_node()
    finally:
        # Even if teardown_node itself is what broke, remove what is left by name.
        subprocess.run(["nft", "delete", "table", "inet", manager.nft_table], capture_output=True)
        for link in json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout):
            if link.get("master") == manager.bridge:
                subprocess.run(["ip", "link", "del", link["ifname"]], capture_output=True)
        subprocess.run(["ip", "link", "del", manager.bridge], capture_output=True)


@pytest.fixture
def net_factory(tmp_path):
    """make(**overrides) -> PodNetworkManager on a fresh bridge, table, pod CIDR and state dir,
    with ensure_node_network() done; every one torn down afterwards."""
    _needs_root()
    made: list[PodNetworkManager] = []

    def make(**overrides) -> PodNetworkManager:
        suffix = secrets.token_hex(3)
        pod_cidr = unused_pod_cidr()
        options = dict(pod_cidr=pod_cidr, state_dir=tmp_path / f"network-{suffix}", bridge=f"skiff-t{suffix}",
                       nft_table=f"skiff_test_{suffix}",
                       node_ip=str(ipaddress.IPv4Network(pod_cidr).network_address + 1))
        options.update(overrides)
        manager = PodNetworkManager(**options)
        made.append(manager)
        manager.ensure_node_network()
        return manager

    try:
        yield make
    finally:
        for manager in made:
            _remove_network(manager)


@pytest.fixture
def net(net_factory):
    return net_factory()


