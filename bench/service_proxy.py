"""The service proxy's nftables syncs and the cost of a ClusterIP on a connection; figures vs goals.

    sudo .venv/bin/python bench/service_proxy.py [--services 1000] [--endpoints 10] [--changes 10]
                                                  [--connections 300]

Everything happens in network namespaces this script creates (sp-bench-*) and
removes at the end; no packet leaves them.

  full sync      ServiceProxy.sync of N Services x M endpoints into an empty
                 namespace (render + one `nft -f -`)                     goal <= 1 s
  one change     one endpoint of one Service removed (then back), the
                 incremental transaction; median of --changes            goal <= 50 ms
  connect        TCP connect + 1-byte reply + close from a client namespace,
                 through a node namespace to a backend namespace: to the pod
                 IP straight, and to a ClusterIP among the N Services' rules
                 (medians per connection; the ratio's goal: close to 1, the
                 lookup is one map, not a rule per Service)
Wall times on a shared machine include waiting for a CPU; the child processes'
CPU time (nft) is printed beside them.
"""
from __future__ import annotations

import argparse
import os
import resource
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.network.serviceproxy import Endpoint, NodeView, ServicePort, ServiceProxy  # noqa: E402
from agent.runtime.linux.syscalls import CLONE_NEWNET, setns  # noqa: E402

SERVER = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(128)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"x"); c.close()
"""

CLIENT = r"""
import socket, sys, time, statistics
host, count = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(count):
    t = time.perf_counter()
    with socket.create_connection((host, 80 if host.startswith("10.96.") else 8080), timeout=5) as s:
        s.recv(1)
    times.append(time.perf_counter() - t)
print(statistics.median(times))
"""


def sh(*argv: str, stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def own_cpu() -> float:
    """This thread's CPU: the proxy's Python side (render, diff)."""
    return time.thread_time()


def service(i: int, endpoints: int, *, drop_last: bool = False, real: tuple[Endpoint, ...] = ()) -> ServicePort:
    eps = real or tuple(Endpoint(ip=f"10.{100 + i // 250}.{i % 250}.{j + 1}", port=8080, node_name="bench")
                        for j in range(endpoints))
    if drop_last:
        eps = eps[:-1]
    return ServicePort(namespace="default", name=f"svc{i}", port_name="http", protocol="tcp", port=80,
                       cluster_ips=(f"10.96.{i // 250}.{i % 250 + 1}",), node_port=30000 + i, endpoints=eps)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--endpoints", type=int, default=10)
    p.add_argument("--changes", type=int, default=10)
    p.add_argument("--connections", type=int, default=300)
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, nftables)")
    tag = secrets.token_hex(3)
    node, client, backend = (f"sp-bench-{tag}-{n}" for n in ("node", "client", "backend"))
    made: list[str] = []
    server = None
    try:
        for ns in (node, client, backend):
            sh("ip", "netns", "add", ns)
            made.append(ns)
        # This thread moves into the node namespace, as the agent runs in its node's: nft is
        # started as the agent starts it (no `ip netns exec` in the measured time).
        home = os.open("/proc/self/ns/net", os.O_RDONLY)
        with open(f"/run/netns/{node}") as target:
            setns(target.fileno(), CLONE_NEWNET)
        proxy = ServiceProxy(table="skiff-svc", node=NodeView(name="bench", node_ips=("10.77.0.1",),
                                                              cluster_cidr="10.77.0.0/16"))
        n, m = args.services, args.endpoints
        pod = Endpoint(ip="10.77.2.2", port=8080, node_name="bench")
        ports = {s.key: s for s in (service(i, m) for i in range(n))}
        target = service(0, m, real=(pod,))   # the first Service leads to the real backend
        ports[target.key] = target

        cpu, py, t = children_cpu(), own_cpu(), time.perf_counter()
        proxy.sync(ports)
        full, full_cpu, full_py = time.perf_counter() - t, children_cpu() - cpu, own_cpu() - py

        walls, cpus, pys = [], [], []
        for k in range(args.changes):
            victim = service(1 + k * (n - 1) // max(args.changes, 1), m, drop_last=True)
            changed = dict(ports)
            changed[victim.key] = victim
            for state in (changed, ports):   # one endpoint away, then back
                cpu, py, t = children_cpu(), own_cpu(), time.perf_counter()
                result = proxy.sync(state)
                walls.append(time.perf_counter() - t)
                cpus.append(children_cpu() - cpu)
                pys.append(own_cpu() - py)
                assert not result.full and result.changed_ports == 1, result
        one, one_cpu, one_py = statistics.median(walls), statistics.median(cpus), statistics.median(pys)
        setns(home, CLONE_NEWNET)

        # Client 10.77.1.2 -> node (routes, the table) -> backend 10.77.2.2.
        sh("ip", "-n", node, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for index, ns in ((1, client), (2, backend)):
            sh("ip", "-n", node, "link", "add", f"v{index}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", node, "addr", "add", f"10.77.{index}.1/24", "dev", f"v{index}")
            sh("ip", "-n", node, "link", "set", f"v{index}", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"10.77.{index}.2/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", f"10.77.{index}.1")
        server = subprocess.Popen(["ip", "netns", "exec", backend, sys.executable, "-c", SERVER],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        connect = {}
        for label, host in (("pod IP", pod.ip), ("ClusterIP", target.cluster_ips[0]),
                            ("pod IP again", pod.ip), ("ClusterIP again", target.cluster_ips[0])):
            out = sh("ip", "netns", "exec", client, sys.executable, "-c", CLIENT, host, str(args.connections))
            connect[label] = float(out)
        direct = min(connect["pod IP"], connect["pod IP again"])
        via = min(connect["ClusterIP"], connect["ClusterIP again"])

        print(f"service proxy: {n} Services x {m} endpoints (load average {os.getloadavg()[0]:.1f})")
        print(f"  full sync         {full * 1000:8.0f} ms   goal <= 1000 ms   {'met' if full <= 1 else 'NOT met'}"
              f"   (CPU: render {full_py * 1000:.0f} ms + nft {full_cpu * 1000:.0f} ms)")
        print(f"  one endpoint      {one * 1000:8.1f} ms   goal <= 50 ms     {'met' if one <= 0.05 else 'NOT met'}"
              f"   (CPU: render {one_py * 1000:.1f} ms + nft {one_cpu * 1000:.1f} ms; median of {len(walls)})")
        print(f"  connect, pod IP   {direct * 1e6:8.0f} us   (median of {args.connections}, best of 2 runs)")
        print(f"  connect, ClusterIP{via * 1e6:8.0f} us   ratio {via / direct:.2f}x   goal: close to 1x")
        setns(target_fd := os.open(f"/run/netns/{node}", os.O_RDONLY), CLONE_NEWNET)
        proxy.teardown()
        setns(home, CLONE_NEWNET)
        os.close(target_fd)
        return 0
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
