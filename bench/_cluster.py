"""A private cluster of hollow nodes for the scale benchmarks (scheduler, api_latency,
controlplane_memory, pod_startup).

    with hollow_cluster(nodes=100) as cluster:
        async with cluster.client() as c: ...   # the admin's client
        ... cluster.server, cluster.pids["controlplane"], cluster.pids["etcd"] ...

etcd and the control plane (`python -m controlplane.main`) on free loopback
ports, and `python -m agent.hollow` running the N hollow nodes in one process
(agent/hollow.py: the agent's pod logic over the in-memory runtime, no
containers, nothing made in the kernel), all in a temp dir; the block gets
them once every node is Ready. At its end every process is stopped by PID
(SIGTERM, then SIGKILL) and the temp dir removed. Needs /usr/bin/etcd, no root.

Secure unless `secure=False`, as a default `skiff up` (decision 34): a cluster CA
in the temp dir (skiff.pki.ClusterPki), etcd with client-certificate auth, the
API with TLS and authorization, each hollow node with its own certificate; the
benchmark's client is the admin's, from the client config written beside them
(`cluster.client()`, skiff.config.connect, as `skiff` connects).

It passes Kubernetes' own node timings (`heartbeat_seconds=10`,
`--node-monitor-grace-period 40`) unless told otherwise: with Skiff's 2 s / 8 s
(decision 23) 1000 nodes write 500 heartbeats a second, and on a busy two-core
machine even 100 nodes' heartbeats arrive late enough to turn nodes Unknown
(and taint them) in the middle of a measurement.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skiff.api import meta  # noqa: E402
from skiff.cli._cluster import controlplane_tls_flags, etcd_tls_flags  # noqa: E402
from skiff.client import ApiClient, ApiError  # noqa: E402
from skiff.config import ClientConfig, connect, write_context  # noqa: E402
from skiff.pki import ClusterPki  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that this process has
    not handed out before: the kernel may give the same free port to two binds in a row
    (a cluster's seven ports drawn one after the other once got the agent's metrics and
    the REST port equal), and a port handed out earlier may be bound later."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@dataclass
class Cluster:
    base: Path
    server: str = ""
    etcd: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def client_config(self) -> Path:
        return self.base / "client-config"

    def client(self) -> ApiClient:
        """A new client with the admin's credentials (secure) or none, from the client config."""
        return connect(path=self.client_config)

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        with open(self.base / f"{name}.log", "wb") as out:
            proc = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT)
        self.procs[name], self.pids[name] = proc, proc.pid
        return proc

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.base / f"{name}.log").read_text(errors="replace").strip().splitlines()[-3:]
                raise SystemExit(f"{name} exited ({proc.returncode}): " + " | ".join(tail))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def ready_nodes(client: ApiClient) -> int:
    nodes, _ = await client.list("Node", "", timeout=60)
    return sum(1 for n in nodes if (c := meta.get_condition(n.status.conditions, "Ready")) and c.status == "True")


async def wait_until(check, *, timeout: float, what: str, interval: float = 0.5, cluster: Cluster | None = None):
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = await check()
        except ApiError:
            got = None
        if got:
            return got
        if cluster is not None:
            cluster.check_alive()
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.contextmanager
def hollow_cluster(*, nodes: int, heartbeat_seconds: float | None = None, controlplane_flags: tuple[str, ...] = (),
                   start_timeout: float = 600.0, hollow_flags: tuple[str, ...] = (),
                   secure: bool = True) -> Iterator[Cluster]:
    heartbeat = heartbeat_seconds if heartbeat_seconds is not None else 10.0
    grace = ("--node-monitor-grace-period", "40") if heartbeat >= 10 else ()
    cluster = Cluster(base=Path(tempfile.mkdtemp(prefix="skiff-bench-scale-")))
    try:
        client, peer = free_port(), free_port()
        cluster.etcd = f"127.0.0.1:{client}"
        cluster.server = f"127.0.0.1:{free_port()}"
        pki = ClusterPki(cluster.base / "pki")
        if secure:
            pki.ensure_cluster(api_addresses=[], service_cluster_ip="10.96.0.1",
                               node_names=[f"hollow-node-{i}" for i in range(nodes)])
            write_context(path=cluster.client_config, name="bench", config=ClientConfig(
                server=cluster.server, certificate_authority=str(pki.ca_file),
                client_certificate=str(pki.cert_file("admin")), client_key=str(pki.key_file("admin"))))
        else:
            write_context(path=cluster.client_config, name="bench", config=ClientConfig(server=cluster.server))
        scheme = "https" if secure else "http"
        cluster.spawn("etcd", [
            "/usr/bin/etcd", "--name", "bench", "--data-dir", str(cluster.base / "etcd"),
            "--listen-client-urls", f"{scheme}://{cluster.etcd}", "--advertise-client-urls",
            f"{scheme}://{cluster.etcd}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}", "--initial-cluster", f"bench=http://127.0.0.1:{peer}",
            "--log-level", "warn", "--quota-backend-bytes", str(4 * 1024 ** 3),
            *(etcd_tls_flags(pki) if secure else ())])
        cluster.spawn("controlplane", [
            sys.executable, "-m", "controlplane.main", "--etcd", cluster.etcd, "--etcd-prefix", "/bench",
            "--listen", cluster.server, "--metrics-listen", f"127.0.0.1:{free_port()}", "--rest-listen", "",
            *grace, *(controlplane_tls_flags(pki) if secure else ()), *controlplane_flags])

        async def api_up() -> bool:
            async with cluster.client() as c:
                await c.list("Namespace", "", timeout=2)
                return True
        asyncio.run(wait_until(api_up, timeout=60, what="the API", cluster=cluster))
        if nodes:
            cluster.spawn("hollow", [sys.executable, "-m", "agent.hollow", "--server", cluster.server,
                                     "--nodes", str(nodes), "--heartbeat-seconds", str(heartbeat),
                                     "--scratch-dir", str(cluster.base / "hollow"), "--log-level", "warning",
                                     *(("--cert-dir", str(pki.directory)) if secure else ()), *hollow_flags])

            async def all_ready() -> bool:
                async with cluster.client() as c:
                    return await ready_nodes(c) >= nodes
            began = time.monotonic()
            asyncio.run(wait_until(all_ready, timeout=start_timeout, what=f"{nodes} hollow nodes Ready",
                                   interval=1, cluster=cluster))
            print(f"{nodes} hollow nodes Ready in {time.monotonic() - began:.1f}s", flush=True)
        yield cluster
    finally:
        for name in ("hollow", "controlplane", "etcd"):
            if name in cluster.procs:
                cluster.stop(name)
        shutil.rmtree(cluster.base, ignore_errors=True)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


async def create_all(client: ApiClient, objects: list, *, concurrency: int = 32) -> None:
    """Create objects through the API, `concurrency` calls in flight."""
    it = iter(objects)

    async def worker() -> None:
        for obj in it:
            await client.create(obj, timeout=120)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
