"""Hollow nodes (kubemark's idea): N node agents in one process, no containers.

Each hollow node is the agent's own kubelet logic with the in-memory runtime
(`agent.runtime.fake.FakeRuntime`) under it: its own Node object registered
and heartbeated by `agent.node.NodeAgent` (as the real agent does: the Ready
condition's lastHeartbeatTime, every `heartbeat_seconds`; Skiff's agent has
no node Lease — the Node's status is its heartbeat), its own pod
informer (field selector `spec.nodeName=<node>`), its own `PodWorkers`
reconciling those pods (sandbox, containers, status writes, termination, the
pod object deleted at the end) — so the control plane sees N real nodes, and
every benchmark or scale test drives the real scheduler, controllers and API.

What makes N = 1000 fit on one small machine:

- ONE `ApiClient` (one gRPC channel, one HTTP/2 connection) for every node:
  each node's watch is a stream on it, each write a call on it — on an
  insecure API. On a secure one (`--cert-dir`, decision 34) each node is
  itself: its own certificate (CN system:node:NAME, O system:nodes, as
  DATA/pki/node-NAME.crt/.key) on its own channel, so the node authorizer
  judges every call as it judges a real node's; a TLS connection per node
  is the price;
- one asyncio loop, one metrics registry; no Agent service, no /metrics, no
  eviction, stats or container-log tasks (nothing to measure on a hollow node);
- the runtime sleeps for a realistic time instead of making namespaces and
  cgroups (`start_latency`, `sandbox_latency`: what the Linux runtime takes
  on these machines), so a pod's start is not free either.

Hollow means hollow: nothing here touches the kernel — no netns, cgroup,
mount, link or nftables rule. The only thing on disk is the pods' scratch
directory (termination-message files, emptyDir directories) under a private
temp dir, removed by `stop()`. A hollow node does not serve logs/exec (its
kubelet endpoint port is 0) and advertises 127.0.0.1 as its address, so
nothing ever connects anywhere on its behalf.

    python -m agent.hollow --server 127.0.0.1:6443 --nodes 100 [--prefix hollow-node]

runs until SIGTERM/SIGINT, then stops every node (their Node objects stay,
as a real agent's do; `skiff down --purge` or a test deletes them).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from agent.config import AgentConfig
from agent.events import EventRecorder
from agent.metrics import AgentMetrics
from agent.node import MAX_PODS, NodeAgent, NodeIdentity
from agent.podworkers import PodWorkers
from agent.runtime.fake import FakeImages, FakeRuntime
from agent.runtime.interface import ContainerConfig, ContainerStatus, Sandbox, SandboxConfig
from agent.stopping import stop_tasks_and_workers
from skiff.client import ApiClient
from skiff.controller import Informer, SharedInformerFactory
from skiff.controller.informer import READY_BOUND_SECONDS

log = logging.getLogger(__name__)

HOLLOW_IP = "127.0.0.1"   # advertised by every hollow node: nothing that follows it leaves this machine


class HollowRuntime(FakeRuntime):
    """FakeRuntime with the Linux runtime's latencies and without a call log
    (which would grow with every pod of a long benchmark)."""

    def __init__(self, *, sandbox_latency: float, start_latency: float) -> None:
        super().__init__()
        self.calls = collections.deque(maxlen=0)   # type: ignore[assignment]  # appends are dropped
        self.sandbox_latency = sandbox_latency
        self.start_latency = start_latency

    async def create_sandbox(self, config: SandboxConfig) -> Sandbox:
        if self.sandbox_latency and config.pod_id not in self.sandboxes:
            await asyncio.sleep(self.sandbox_latency)
        return await super().create_sandbox(config)

    async def start(self, config: ContainerConfig) -> ContainerStatus:
        if self.start_latency:
            await asyncio.sleep(self.start_latency)
        return await super().start(config)


@dataclass(frozen=True)
class HollowConfig:
    server: str
    nodes: int
    prefix: str = "hollow-node"
    # The real agent's period (decision 23: with the control plane's 8 s grace). A benchmark of
    # 1000 nodes passes Kubernetes' 10 s (and the control plane --node-monitor-grace-period 40).
    heartbeat_seconds: float = AgentConfig.heartbeat_seconds
    # Measured for the Linux runtime on these machines (bench/container_start.py, decision 29):
    # a pod sandbox (namespaces, cgroup) ≈ 30 ms, a container start in it ≈ 15 ms.
    sandbox_latency: float = 0.03
    start_latency: float = 0.015
    resync_seconds: float = 60.0
    max_pods: int = MAX_PODS   # each node's capacity/allocatable pods (kubelet's --max-pods)
    # A secure API (decision 34): the directory with ca.crt and node-NAME.crt/.key per node (DATA/pki).
    cert_dir: str = ""

    def node_name(self, index: int) -> str:
        return f"{self.prefix}-{index}"


def validate(config: HollowConfig) -> None:
    """Raises ValueError naming the flag."""
    if config.nodes < 1:
        raise ValueError(f"--nodes: must be at least 1, got {config.nodes}")
    if not config.prefix or not all(c.isalnum() or c in "-." for c in config.prefix) \
            or not config.prefix[0].isalnum() or config.prefix != config.prefix.lower():
        raise ValueError(f"--prefix: {config.prefix!r} is not a valid start of a node name "
                         "(lower-case letters, digits, '-' and '.', starting with a letter or digit)")
    if config.max_pods < 1:
        raise ValueError(f"--max-pods: must be at least 1, got {config.max_pods}")
    for flag, value in (("--heartbeat-seconds", config.heartbeat_seconds),
                        ("--resync-seconds", config.resync_seconds)):
        if value <= 0:
            raise ValueError(f"{flag}: must be positive, got {value:g}")
    for flag, value in (("--sandbox-latency", config.sandbox_latency), ("--start-latency", config.start_latency)):
        if value < 0:
            raise ValueError(f"{flag}: must not be negative, got {value:g}")
    if config.cert_dir:
        wanted = ["ca.crt", *(f"node-{config.node_name(i)}.{ext}" for i in range(config.nodes)
                              for ext in ("crt", "key"))]
        missing = [name for name in wanted if not (Path(config.cert_dir) / name).is_file()]
        if missing:
            raise ValueError(f"--cert-dir {config.cert_dir}: no {missing[0]}"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))


class HollowNode:
    """One node: registration, heartbeat, pod informer and pod workers over a shared client."""

    def __init__(self, *, name: str, client: ApiClient, config: HollowConfig, metrics: AgentMetrics,
                 pods_dir: Path) -> None:
        self.name = name
        self.client = client
        self.config = config
        self.runtime = HollowRuntime(sandbox_latency=config.sandbox_latency, start_latency=config.start_latency)
        self.pods_dir = pods_dir
        self.informers = SharedInformerFactory(client, metrics=metrics.controller)
        self.informer: Informer | None = None
        self.node = NodeAgent(client=client, identity=NodeIdentity(name, HOLLOW_IP, 0, max_pods=config.max_pods),
                              period_seconds=config.heartbeat_seconds,
                              watch_health=lambda: self.informer.problem(READY_BOUND_SECONDS)
                              if self.informer else None)
        self.metrics = metrics
        self.workers: PodWorkers | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """As agent.app.Agent.start, without network, service, eviction and stats."""
        await self.node.register()
        self._tasks.append(asyncio.create_task(self.node.heartbeat(), name=f"heartbeat {self.name}"))
        self.informer = self.informers.informer("Pod", field_selector=f"spec.nodeName={self.name}")
        self.informers.start()
        await self.informer.wait_synced()
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.workers = PodWorkers(node_name=self.name, node_ip=HOLLOW_IP, pods=self.informer, client=self.client,
                                  runtime=self.runtime, images=FakeImages(), pods_dir=self.pods_dir,
                                  pids_limit=0, metrics=self.metrics,
                                  events=EventRecorder(client=self.client, node_name=self.name),
                                  informers=self.informers, memory_volumes=False)
        await self.workers.recover()
        self.informer.add_handler(self.workers.on_pod_event)
        self.workers.start()
        self._tasks.append(asyncio.create_task(self._resync(), name=f"resync {self.name}"))

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.config.resync_seconds)
            for uid in {p.metadata.uid for p in self.informer.list()} | set(self.workers.records):
                self.workers.enqueue(uid)

    def pods_running(self) -> int:
        return len({c.pod_id for c in self.runtime.running()})

    async def stop(self) -> None:
        await stop_tasks_and_workers(self._tasks, self.workers)
        await self.informers.stop()


class HollowCluster:
    """N hollow nodes over one client; `async with` starts and stops them all."""

    def __init__(self, config: HollowConfig, *, scratch: Path | None = None) -> None:
        validate(config)
        self.config = config
        self.client = ApiClient(config.server)   # an insecure API's one channel for every node
        self.metrics = AgentMetrics(node_name=config.prefix)   # one registry for all: nothing serves it
        self._scratch_parent = scratch
        self.scratch: Path | None = None
        self.nodes: list[HollowNode] = []

    @property
    def node_names(self) -> list[str]:
        return [self.config.node_name(i) for i in range(self.config.nodes)]

    async def start(self, *, concurrency: int = 50) -> None:
        """Register every node (`concurrency` at a time, as nodes joining a cluster would) and start it."""
        if self._scratch_parent is not None:
            self._scratch_parent.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="skiff-hollow-", dir=self._scratch_parent))
        self.nodes = [HollowNode(name=name, client=self._client_of(name), config=self.config,
                                 metrics=self.metrics, pods_dir=self.scratch / name) for name in self.node_names]
        gate = asyncio.Semaphore(concurrency)

        async def start_one(node: HollowNode) -> None:
            async with gate:
                await node.start()
        try:
            await asyncio.gather(*(start_one(n) for n in self.nodes))
        except BaseException:
            await self.stop()
            raise
        log.info("%d hollow nodes ready (%s-0 .. %s-%d)", len(self.nodes), self.config.prefix,
                 self.config.prefix, len(self.nodes) - 1)

    def _client_of(self, name: str) -> ApiClient:
        if not self.config.cert_dir:
            return self.client
        from skiff.pki import ClusterPki
        files = ClusterPki(Path(self.config.cert_dir))
        return ApiClient(self.config.server, credentials=files.credentials(f"node-{name}"))

    async def stop(self) -> None:
        """Stop every node (their Node objects stay, as a real agent's do) and remove the scratch dir."""
        await asyncio.gather(*(n.stop() for n in self.nodes), return_exceptions=True)
        clients = {id(c): c for c in [self.client, *(n.client for n in self.nodes)]}   # one, or one per node
        await asyncio.gather(*(c.close() for c in clients.values()), return_exceptions=True)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    async def delete_nodes(self) -> None:
        """Delete the Node objects (a test's or bench's teardown)."""
        from skiff.client import NotFound
        for node in self.nodes:   # each with its own client: on a secure API a node may delete only itself
            try:
                await node.client.delete("Node", node.name, "")
            except NotFound:
                pass

    def pods_running(self) -> int:
        return sum(n.pods_running() for n in self.nodes)

    async def __aenter__(self) -> "HollowCluster":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def config_from_args(argv: Sequence[str] | None = None) -> tuple[HollowConfig, Path | None, str]:
    p = argparse.ArgumentParser(prog="python -m agent.hollow",
                                description="Run N hollow node agents (in-memory runtime) in one process.")
    p.add_argument("--server", required=True, metavar="HOST:PORT", help="the control plane's API")
    p.add_argument("--nodes", type=int, required=True, metavar="N", help="how many hollow nodes")
    p.add_argument("--prefix", default=HollowConfig.prefix, metavar="NAME",
                   help="node names are PREFIX-0 .. PREFIX-(N-1) (default %(default)s)")
    p.add_argument("--heartbeat-seconds", type=float, default=HollowConfig.heartbeat_seconds, metavar="SECONDS")
    p.add_argument("--sandbox-latency", type=float, default=HollowConfig.sandbox_latency, metavar="SECONDS",
                   help="how long a pod sandbox takes to make (default %(default)s)")
    p.add_argument("--start-latency", type=float, default=HollowConfig.start_latency, metavar="SECONDS",
                   help="how long a container takes to start (default %(default)s)")
    p.add_argument("--max-pods", type=int, default=HollowConfig.max_pods, metavar="N",
                   help="each node's pod capacity (default %(default)s)")
    p.add_argument("--scratch-dir", type=Path, default=None, metavar="DIR",
                   help="where the private scratch dir goes (default: the system temp dir)")
    p.add_argument("--cert-dir", default="", metavar="DIR",
                   help="a secure API: DIR/ca.crt and each node's DIR/node-NAME.crt/.key (DATA/pki as `skiff up` "
                        "writes it)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    args = p.parse_args(argv)
    config = HollowConfig(server=args.server, nodes=args.nodes, prefix=args.prefix, max_pods=args.max_pods,
                          heartbeat_seconds=args.heartbeat_seconds, sandbox_latency=args.sandbox_latency,
                          start_latency=args.start_latency, cert_dir=args.cert_dir)
    validate(config)
    return config, args.scratch_dir, args.log_level


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config, scratch, level = config_from_args(argv)
    except ValueError as exc:
        print(f"skiff-hollow: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "debug":   # a thousand nodes' per-pod info lines drown the log
        logging.getLogger("agent").setLevel(max(logging.WARNING, logging.getLogger().level))
        logging.getLogger(__name__).setLevel(level.upper())

    async def run() -> None:
        cluster = HollowCluster(config, scratch=scratch)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        start = asyncio.create_task(cluster.start())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not start.done():
            start.cancel()
            await asyncio.gather(start, return_exceptions=True)
        elif start.exception() is not None:
            stopped.cancel()
            raise start.exception()
        await stopped
        log.info("stopping %d hollow nodes", len(cluster.nodes))
        await cluster.stop()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
