"""Helpers for the pod-networking tests: test namespaces, tiny servers and clients, leak checks.

The fixtures that create and always remove these things are in conftest.py.
"""
from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # the repository


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


UDP_SINK = r"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
print("ready", flush=True)
while True:
    data = s.recv(100).decode()
    print(data, flush=True)
    if data == "end":
        break
"""

UDP_SEND = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(sys.argv[2].encode(), (sys.argv[1], 9999))
"""
