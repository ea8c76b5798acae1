"""Node failure: how long until a dead node's Deployment pods run elsewhere.

    python bench/node_failure.py [--nodes 3] [--replicas 6] [--timeout 120] [-- CONTROLPLANE-FLAGS...]

Starts a private cluster on free loopback ports in a temp dir: etcd, the
control plane (`python -m controlplane.main`, Skiff's defaults unless flags
follow `--`) and N hollow nodes (`python -m agent.main --runtime fake`, the
agent's default heartbeat). Applies a Deployment, waits until every replica
is Running, stops (SIGKILL: a node that dies says nothing) the agent of the
node with the most pods, and prints, from that moment:

  NotReady        until the node's Ready condition is no longer True
  pods elsewhere  until `replicas` live pods are Running, none on that node

beside Kubernetes' defaults (node-monitor-grace-period 40 s, then the default
300 s toleration of node.kubernetes.io/unreachable: 340 s), as a ratio, and
the goal (<= 15 s). Everything it started is stopped by PID, the temp dir removed.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._cluster import free_port, wait_until  # noqa: E402
from proto.skiff.v1 import apps_pb2  # noqa: E402
from skiff.api import meta  # noqa: E402
from skiff.client import ApiClient  # noqa: E402

K8S_NOT_READY, K8S_TOLERATION = 40.0, 300.0
POLL_SECONDS = 0.05   # the timings' resolution
GOAL = 15.0
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT)


def start_etcd(base: Path) -> tuple[subprocess.Popen, str]:
    client, peer = free_port(), free_port()
    endpoint = f"127.0.0.1:{client}"
    proc = spawn(["/usr/bin/etcd", "--name", "bench", "--data-dir", str(base / "etcd"),
                  "--listen-client-urls", f"http://{endpoint}", "--advertise-client-urls", f"http://{endpoint}",
                  "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                  "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                  "--initial-cluster", f"bench=http://127.0.0.1:{peer}", "--log-level", "warn"],
                 base / "etcd.log")
    return proc, endpoint


def start_agent(base: Path, server: str, name: str) -> subprocess.Popen:
    return spawn([sys.executable, "-m", "agent.main", "--server", server, "--node-name", name,
                  "--listen", f"127.0.0.1:{free_port()}", "--metrics-listen", f"127.0.0.1:{free_port()}",
                  "--data-dir", str(base / name / "data"), "--run-dir", str(base / name / "run"),
                  "--runtime", "fake"], base / f"{name}.log")


def deployment(replicas: int) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name = "bench-web"
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = "bench-web"
    d.spec.template.metadata.labels["app"] = "bench-web"
    d.spec.template.spec.containers.add(name="c", image="busybox", command=["sleep", "3600"])
    return d


async def measure(server: str, *, nodes: list[str], replicas: int, timeout: float,
                  agents: dict[str, subprocess.Popen]) -> tuple[float, float]:
    async with ApiClient(server) as c:
        async def ready_nodes() -> list[str]:
            listed, _ = await c.list("Node")
            return sorted(n.metadata.name for n in listed
                          if (r := meta.get_condition(n.status.conditions, "Ready")) and r.status == "True")

        async def running_on() -> list[str]:
            pods, _ = await c.list("Pod", "default", label_selector="app=bench-web")
            return [p.spec.node_name for p in pods if p.status.phase == "Running"
                    and not p.metadata.HasField("deletion_timestamp")]

        await wait_until(lambda: _is(ready_nodes(), sorted(nodes)), timeout=timeout, what="nodes Ready",
                         interval=POLL_SECONDS)
        await c.create(deployment(replicas))
        await wait_until(lambda: _count(running_on(), replicas), timeout=timeout, what="replicas Running",
                         interval=POLL_SECONDS)
        placed = await running_on()
        victim = max(nodes, key=placed.count)
        print(f"{replicas} pods Running on {len(nodes)} hollow nodes; killing {victim}'s agent "
              f"({placed.count(victim)} pods there)")
        agents[victim].send_signal(signal.SIGKILL)
        agents.pop(victim).wait()
        t0 = time.monotonic()
        await wait_until(lambda: _not_in(victim, ready_nodes()), timeout=timeout, what=f"{victim} NotReady",
                         interval=POLL_SECONDS)
        not_ready = time.monotonic() - t0

        async def moved() -> bool:
            on = await running_on()
            return len(on) == replicas and victim not in on
        await wait_until(moved, timeout=timeout, what="pods Running elsewhere", interval=POLL_SECONDS)
        return not_ready, time.monotonic() - t0


async def _is(coro, want) -> bool:
    return await coro == want


async def _count(coro, n: int) -> bool:
    return len(await coro) == n


async def _not_in(name: str, coro) -> bool:
    return name not in await coro


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--replicas", type=int, default=6)
    p.add_argument("--timeout", type=float, default=120.0, help="bound on each wait (raise it for Kubernetes' flags)")
    p.add_argument("controlplane_flags", nargs="*", help="after --: extra control-plane flags")
    a = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="skiff-bench-nodefail-"))
    procs: list[subprocess.Popen] = []
    agents: dict[str, subprocess.Popen] = {}
    try:
        etcd, endpoint = start_etcd(base)
        procs.append(etcd)
        server = f"127.0.0.1:{free_port()}"
        procs.append(spawn([sys.executable, "-m", "controlplane.main", "--etcd", endpoint,
                            "--etcd-prefix", "/bench", "--listen", server,
                            "--metrics-listen", f"127.0.0.1:{free_port()}", "--rest-listen", "",
                            *a.controlplane_flags], base / "controlplane.log"))
        nodes = [f"hollow-{i}" for i in range(1, a.nodes + 1)]
        for name in nodes:
            agents[name] = start_agent(base, server, name)
        not_ready, moved = asyncio.run(measure(server, nodes=nodes, replicas=a.replicas, timeout=a.timeout,
                                               agents=agents))
        k8s_moved = K8S_NOT_READY + K8S_TOLERATION
        print(f"{'':22}{'Skiff':>9}{'Kubernetes':>12}{'ratio':>8}")
        print(f"{'node NotReady':22}{not_ready:8.1f}s{K8S_NOT_READY:11.0f}s{K8S_NOT_READY / not_ready:7.0f}x")
        print(f"{'pods Running elsewhere':22}{moved:8.1f}s{k8s_moved:11.0f}s{k8s_moved / moved:7.0f}x"
              f"   goal <= {GOAL:.0f}s: {'met' if moved <= GOAL else 'MISSED'}")
    finally:
        for proc in [*agents.values(), *reversed(procs)]:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
