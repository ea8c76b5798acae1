"""Cluster DNS: answers per second and latency of the node's server with many Services.

    python bench/cluster_dns.py [--services 10000] [--queries 5000] [--concurrency 50]

Builds a view of N ClusterIP Services (and a headless one of 100 ready
endpoints), starts agent.dns.DnsServer on 127.0.0.1 (a free port) in a child
process of its own, and sends queries over UDP from this process: 1000 one at
a time (latency p50/p99), then --queries with --concurrency in flight, twice:
distinct names (every answer parsed, resolved and rendered by dnspython) and
names each asked 50 times (what pods do: every pod of a Deployment asks the
same names; answered from the server's cache). Names are what ndots:5 makes
of a lookup — a Service's name under each search domain, so a third hit and
two thirds are NXDOMAIN. The server's CPU time (/proc/PID/stat) per answer
is the figure that does not depend on the machine's load; it is printed as
answers a second on one core beside the goals: 1000/s uncached, 10 000/s
cached, and p99 under 5 ms one at a time. (CoreDNS answers some tens of
thousands a second; this server shares the agent's event loop, so it must
stay cheap, not win.)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dns.message  # noqa: E402

from agent.dns import DnsServer, EndpointInfo, Port, Resolver, ServiceInfo  # noqa: E402
from agent.dns.view import StaticView  # noqa: E402


class IndexedView(StaticView):
    """StaticView with services by key, as the informer's cache has them."""

    by_key: dict | None = None

    def service(self, namespace, name):
        if self.by_key is None:
            self.by_key = {(s.namespace, s.name): s for s in self.services}
        return self.by_key.get((namespace, name))

    def namespaces(self):
        return {"default", "shop"}


def build(services: int) -> IndexedView:
    svcs = [ServiceInfo("shop", f"svc-{i}", cluster_ips=(f"10.96.{i // 250}.{i % 250 + 1}",),
                        ports=(Port("http", "TCP", 80),)) for i in range(services)]
    svcs.append(ServiceInfo("shop", "db", cluster_ips=("None",)))
    endpoints = {("shop", "db"): [EndpointInfo((f"10.244.0.{i + 2}",)) for i in range(100)]}
    return IndexedView(services=svcs, endpoint_lists=endpoints)


def names(services: int, count: int, repeat: int) -> list[bytes]:
    rng = random.Random(1)
    out = []
    for _ in range(count // repeat):
        svc = f"svc-{rng.randrange(services)}"
        suffix = rng.choice(["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"])
        out += [dns.message.make_query(f"{svc}.{suffix}", "A").to_wire()] * repeat
    rng.shuffle(out)
    return out


async def one_at_a_time(address, wires: list[bytes]) -> list[float]:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect(address)
    took = []
    try:
        for wire in wires:
            start = time.perf_counter()
            await loop.sock_sendall(sock, wire)
            await loop.sock_recv(sock, 4096)
            took.append(time.perf_counter() - start)
    finally:
        sock.close()
    return took


async def concurrent(address, wires: list[bytes], concurrency: int) -> float:
    chunks = [wires[i::concurrency] for i in range(concurrency)]
    start = time.perf_counter()
    await asyncio.gather(*(one_at_a_time(address, chunk) for chunk in chunks))
    return len(wires) / (time.perf_counter() - start)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (/proc/PID/stat), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def serve(services: int) -> None:
    server = DnsServer(resolver=Resolver(view=build(services)))
    await server.start("127.0.0.1", 0)
    print(server.address[1], flush=True)
    await asyncio.Event().wait()


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=10000)
    p.add_argument("--queries", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        await serve(args.services)
        return 0
    child = subprocess.Popen([sys.executable, __file__, "--serve", "--services", str(args.services)],
                             stdout=subprocess.PIPE, text=True)
    try:
        address = ("127.0.0.1", int(child.stdout.readline()))
        took = sorted(await one_at_a_time(address, names(args.services, 1000, 1)))
        p50, p99 = took[len(took) // 2] * 1000, took[int(len(took) * 0.99)] * 1000
        figures = {}
        for label, wires in (("distinct names (parsed, resolved, rendered)", names(args.services, args.queries, 1)),
                             ("repeated names (the answer cache)", names(args.services, args.queries, 50))):
            before = cpu_seconds(child.pid)
            qps = await concurrent(address, wires, args.concurrency)
            figures[label] = (qps, (cpu_seconds(child.pid) - before) / len(wires))
    finally:
        os.kill(child.pid, signal.SIGTERM)
        child.wait()
    print(f"cluster DNS with {args.services} Services (a third of the names hit, two thirds NXDOMAIN as the "
          f"search path makes them); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  one at a time: p50 {p50:.2f} ms, p99 {p99:.2f} ms   (goal: p99 <= 5 ms) {'ok' if p99 <= 5 else 'OVER'}")
    for (label, (qps, cpu)), goal in zip(figures.items(), (1000, 10000)):
        print(f"  {label}: {args.concurrency} in flight {qps:,.0f} answers/s; server CPU {cpu * 1e6:.0f} us an "
              f"answer = {1 / cpu:,.0f}/s on one core   (goal: >= {goal}/s) {'ok' if 1 / cpu >= goal else 'UNDER'}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
