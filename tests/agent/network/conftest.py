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
namespaces deleted, and a check that no veth of the bridge, no bridge and no table
is left.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.network import PodNetworkManager

ROOT = Path(__file__).resolve().parents[3]  # the repository


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, bridges, nftables)")


def _used_networks() -> list[ipaddress.IPv4Network]:
    used = []
    for line in json.loads(subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True,
                                          check=True).stdout):
        for a in line.get("addr_info", []):
            used.append(ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}").network)
    for r in json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True,
                                       text=True, check=True).stdout):
        dst = r.get("dst", "")
        if dst and dst != "default" and r.get("type", "unicast") == "unicast":
            used.append(ipaddress.IPv4Network(dst if "/" in dst else dst + "/32", strict=False))
    return used


def unused_pod_cidr() -> str:
    used = _used_networks()
    for _ in range(100):
        candidate = ipaddress.IPv4Network(f"10.250.{secrets.randbelow(256)}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise RuntimeError("no unused 10.250.X.0/24 on this machine")


@dataclass(frozen=True)
class NetnsHandle:
    name: str
    path: Path

    def run(self, *args: str, timeout: float = 20, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *args], capture_output=True, text=True,
                              timeout=timeout, check=check)

    def addresses(self) -> list[dict]:
        return json.loads(subprocess.run(["ip", "-n", self.name, "-j", "addr"], capture_output=True, text=True,
                                         check=True).stdout)

    def routes(self) -> list[dict]:
        return json.loads(subprocess.run(["ip", "-n", self.name, "-j", "-4", "route"], capture_output=True,
                                         text=True, check=True).stdout)


@pytest.fixture
def make_pod_netns():
    _needs_root()
    made: list[NetnsHandle] = []

    def make() -> NetnsHandle:
        name = f"skiff-test-{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        handle = NetnsHandle(name=name, path=Path("/run/netns") / name)
        made.append(handle)
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


def leftovers(*, bridge: str, table: str) -> list[str]:
    """Kernel objects of this test's network that still exist."""
    found = []
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout)
    for link in links:
        if link["ifname"] == bridge or link.get("master") == bridge:
            found.append(f"link {link['ifname']}")
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    if f"inet {table}\n" in tables + "\n":
        found.append(f"nft table inet {table}")
    return found


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


TCP_ECHO_SERVER = r"""
import socket, sys
token = sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(f"{token} {peer[0]}".encode())
    c.close()
"""

TCP_CLIENT = r"""
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
    print(s.recv(200).decode())
"""


def start_tcp_server(*, spawn, netns: NetnsHandle, port: int, token: str) -> subprocess.Popen:
    proc = spawn(netns, sys.executable, "-c", TCP_ECHO_SERVER, str(port), token)
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"server in {netns.name} did not start: {proc.stderr.read()}"
    return proc
