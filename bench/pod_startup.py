"""Pod startup latency, Kubernetes' SLO measurement: creation -> all containers running, seen through a watch.

    python bench/pod_startup.py [--real-pods 100] [--rates 20,50] [--hollow-nodes 100] [--pods-per-node 30]
                                [--hollow-rate 20] [--only real|hollow] [--max-pods 110]

Two shapes, each printing p50/p90/p99 beside Kubernetes' SLO (5 s p99, image
already present, as the SLO counts it) and Skiff's goal:

  real    a private all-in-one cluster on this machine (`skiff up`, its own
          dirs, ports, bridge, nftables table and cgroup parent; bench/density.py's
          Cluster), one real node, busybox present; `--real-pods` pods
          (`sleep`) created through the API at each rate in `--rates`.
          Goal: p99 <= 0.5 s at 20/s and at 50/s. Needs root.
  hollow  bench/_cluster.py: etcd, the control plane and `--hollow-nodes`
          hollow nodes (agent/hollow.py, the agent's pod logic over the
          in-memory runtime with the Linux runtime's latencies); nodes x
          `--pods-per-node` pods created at `--hollow-rate`. Goal: p99 <= 1 s.
          Needs etcd only.

What is timed, per pod: from just before its create call is sent to the first
watch event showing every container `running` (the watch is opened before
the first create, on the run's label, from the list's resourceVersion). The
creates go out on a fixed schedule (pod i at i/rate s), each as its own task,
so a slow create never delays the next one; each pod is also timed to its
first event with spec.nodeName set (scheduled), which splits the latency
into the control plane's share and the node's. The 1-minute load average is
printed beside the figures: the machine is shared, and a busy one moves them.
For the real node, the CPU each part spent over a run (first create to last
pod running), from /proc/<pid>/stat, is printed per pod started: the agent,
its zygote and spare (its Skiff children), the control plane, etcd, and the
whole machine from /proc/stat (the rest is the containers' own setup and
this script), the API requests a pod took (apiserver_request_total) and the
control plane's etcd requests (etcd_request_duration_seconds_count).
Every pod is deleted after each run; the cluster is torn down at the end
(`skiff down --purge`, or every process stopped by PID) and its temp dir removed.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.node import MAX_PODS  # noqa: E402
from bench._cluster import hollow_cluster, percentile  # noqa: E402
from proto.skiff.v1 import types_pb2  # noqa: E402
from skiff.client import ApiClient, NotFound  # noqa: E402

SLO_SECONDS = 5.0
REAL_GOAL = 0.5
HOLLOW_GOAL = 1.0
WARM_PODS = 5    # run (and deleted) before the measured runs, so the image and the node are warm


@dataclass
class Run:
    created: dict[str, float] = field(default_factory=dict)     # name -> monotonic time its create was sent
    scheduled: dict[str, float] = field(default_factory=dict)   # name -> first event with spec.nodeName
    running: dict[str, float] = field(default_factory=dict)     # name -> first event with all containers running
    failed: list[str] = field(default_factory=list)
    cpu: tuple[dict[str, float], dict[str, float]] | None = None   # samples at the first create and when all ran

    def latencies(self) -> list[float]:
        return [self.running[n] - self.created[n] for n in self.running if n in self.created]

    def split(self) -> tuple[list[float], list[float]]:
        to_node = [self.scheduled[n] - self.created[n] for n in self.running if n in self.scheduled]
        on_node = [self.running[n] - self.scheduled[n] for n in self.running if n in self.scheduled]
        return to_node, on_node


def pod(name: str, tag: str, image: str, command: list[str]) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = name
    p.metadata.labels["pod-startup"] = tag
    p.spec.termination_grace_period_seconds = 0
    c = p.spec.containers.add(name="c", image=image, image_pull_policy="IfNotPresent")
    c.command.extend(command)
    return p


def all_running(p: types_pb2.Pod) -> bool:
    statuses = p.status.container_statuses
    return len(statuses) == len(p.spec.containers) and all(s.state.HasField("running") for s in statuses)


async def measure(client: ApiClient, *, count: int, rate: float, image: str, command: list[str],
                  timeout: float, sample: Callable[[], dict[str, float]] | None = None) -> Run:
    """Create `count` pods at `rate`/s; return when the watch saw all of them running (or at `timeout`)."""
    tag = secrets.token_hex(4)
    run = Run()
    _, rv = await client.list("Pod", "default", label_selector=f"pod-startup={tag}", timeout=60)
    everything = asyncio.Event()

    async def watch() -> None:
        async for kind, p, _rv in client.watch("Pod", "default", label_selector=f"pod-startup={tag}",
                                               resource_version=rv):
            if p is None or kind == "DELETED":
                continue
            now = time.monotonic()
            name = p.metadata.name
            if p.spec.node_name and name not in run.scheduled:
                run.scheduled[name] = now
            if name not in run.running and all_running(p):
                run.running[name] = now
                if len(run.running) == count:
                    everything.set()
            elif p.status.phase in ("Failed", "Succeeded") and name not in run.failed:
                run.failed.append(name)

    watcher = asyncio.create_task(watch())
    creates: list[asyncio.Task] = []
    cpu_before = sample() if sample else {}
    began = time.monotonic()

    async def create(p: types_pb2.Pod) -> None:
        run.created[p.metadata.name] = time.monotonic()
        await client.create(p, timeout=120)
    try:
        for i in range(count):
            delay = began + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            creates.append(asyncio.create_task(create(pod(f"startup-{tag}-{i:05d}", tag, image, command))))
        await asyncio.gather(*creates)
        created_in = time.monotonic() - began
        try:
            await asyncio.wait_for(everything.wait(), timeout)
            if sample:
                run.cpu = (cpu_before, sample())
            ran = f"all running {time.monotonic() - began:.1f}s after the first"
        except TimeoutError:
            ran = f"only {len(run.running)}/{count} running after {timeout:g}s"
        print(f"  {count} creates sent in {created_in:.1f}s ({count / created_in:.0f}/s); {ran}", flush=True)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await delete_all(client, tag, count)
    return run


async def delete_all(client: ApiClient, tag: str, count: int) -> None:
    pods, _ = await client.list("Pod", "default", label_selector=f"pod-startup={tag}", timeout=120)
    gate = asyncio.Semaphore(32)

    async def delete(name: str) -> None:
        async with gate:
            try:
                await client.delete("Pod", name, "default", timeout=120)
            except NotFound:
                pass
    await asyncio.gather(*(delete(p.metadata.name) for p in pods))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        left, _ = await client.list("Pod", "default", label_selector=f"pod-startup={tag}", timeout=120)
        if not left:
            return
        await asyncio.sleep(1)
    print(f"  warning: {len(left)} pods of the run still there after 300 s", flush=True)


def report(label: str, run: Run, *, count: int, goal: float) -> None:
    lat = run.latencies()
    load = os.getloadavg()[0]
    if not lat:
        print(f"{label:44} no pod ran  (load {load:.1f})", flush=True)
        return
    p50, p90, p99 = (percentile(lat, p) for p in (50, 90, 99))
    verdict = "met" if p99 <= goal and len(lat) == count else f"MISSED by {p99 / goal:.1f}x"
    print(f"{label:44} p50 {p50:6.3f}s  p90 {p90:6.3f}s  p99 {p99:6.3f}s   SLO {SLO_SECONDS:g}s "
          f"({SLO_SECONDS / p99:.1f}x inside)   goal <= {goal:g}s: {verdict}   [{len(lat)}/{count} pods, "
          f"load {load:.1f}]", flush=True)
    to_node, on_node = run.split()
    if to_node:
        print(f"{'':44} create->scheduled p50 {percentile(to_node, 50):.3f}s p99 {percentile(to_node, 99):.3f}s;"
              f" scheduled->running p50 {percentile(on_node, 50):.3f}s p99 {percentile(on_node, 99):.3f}s",
              flush=True)
    if run.failed:
        print(f"{'':44} {len(run.failed)} pods ended instead of running, e.g. {run.failed[0]}", flush=True)


TICKS = os.sysconf("SC_CLK_TCK")
IDLE_SECONDS = 3.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process; 0 for one that is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine was busy (all but idle and iowait) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICKS


def api_requests(metrics_url: str) -> dict[str, float]:
    """From the control plane's /metrics: apiserver_request_total by 'api VERB resource[/subresource]'
    and its etcd requests by 'etcd operation resource'."""
    from prometheus_client.parser import text_string_to_metric_families
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(metrics_url, timeout=10) as reply:
        text = reply.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if family.name == "apiserver_request" and s.name.endswith("_total"):
                sub = s.labels.get("subresource", "")
                key = f"api {s.labels['verb']} {s.labels['resource']}{'/' + sub if sub else ''}"
            elif family.name == "etcd_request_duration_seconds" and s.name.endswith("_count"):
                key = f"etcd {s.labels['operation']} {s.labels['type']}"
            else:
                continue
            counts[key] = counts.get(key, 0.0) + s.value
    return counts


def cpu_sample(parts: dict[str, list[int]], metrics_url: str) -> dict[str, float]:
    return {**{name: sum(cpu_seconds(pid) for pid in pids) for name, pids in parts.items()},
            "machine": machine_busy_seconds(), **api_requests(metrics_url)}


def report_cpu(before: dict[str, float], after: dict[str, float], *, pods: int) -> None:
    per_pod = {name: (after[name] - before.get(name, 0.0)) / pods for name in after}
    parts = ", ".join(f"{name} {1000 * v:.1f}" for name, v in per_pod.items()
                      if name != "machine" and not name.startswith(("api ", "etcd ")))
    print(f"{'':44} CPU a pod started, ms: {parts}; whole machine {1000 * per_pod['machine']:.1f} "
          f"(goal 100 pods/s on {os.cpu_count()} cores: <= {1000 * (os.cpu_count() or 1) / 100:.0f})", flush=True)
    calls = ", ".join(f"{name[4:]} {v:.2f}" for name, v in sorted(per_pod.items(), key=lambda kv: -kv[1])
                      if name.startswith("api ") and v >= 0.05)
    print(f"{'':44} API requests a pod started: {calls}", flush=True)
    calls = ", ".join(f"{name[5:]} {v:.2f}" for name, v in sorted(per_pod.items(), key=lambda kv: -kv[1])
                      if name.startswith("etcd ") and v >= 0.05)
    print(f"{'':44} the control plane's etcd requests a pod started: {calls}", flush=True)


def run_real(a: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        raise SystemExit("the real-node runs need root (they run real containers); --only hollow skips them")
    from bench.density import Cluster, descendants, exe_id, free_port, teardown
    from skiff.config import resolve_credentials, resolve_server
    base = Path(tempfile.mkdtemp(prefix="skiff-bench-startup-"))
    cluster = Cluster(base=base, ports={k: free_port() for k in ("etcd", "peer", "api", "cpm", "agent", "agentm")},
                      node_name="skiff-startup-" + base.name.rsplit("-", 1)[-1].replace("_", "x").lower())
    try:
        if not a.run_dir_on_disk:
            cluster.volatile_run_dir()   # a tmpfs, as a Debian host's /run
        print("bootstrapping busybox and starting a private cluster ...", flush=True)
        cluster.skiff("image", "--data-dir", str(cluster.data_dir), "bootstrap", "busybox")
        # A run bigger than the node's default capacity would leave pods Pending (and wait out --timeout).
        max_pods = a.max_pods or (a.real_pods + WARM_PODS if a.real_pods + WARM_PODS > MAX_PODS else 0)
        up_args = cluster.up_args() + (["--max-pods", str(max_pods)] if max_pods else [])
        up = cluster.skiff(*up_args, check=False)
        if up.returncode != 0:
            raise SystemExit(f"skiff up failed:\n{up.stdout}{up.stderr}{cluster.log_tails()}")
        env = cluster.env()

        agent = cluster.pid("agent")
        metrics_url = f"http://127.0.0.1:{cluster.ports['cpm']}/metrics"
        parts = {"agent": [agent], "zygote": [pid for pid in descendants(agent) if exe_id(pid) == exe_id(agent)],
                 "control plane": [cluster.pid("controlplane")], "etcd": [cluster.pid("etcd")]}

        async def body() -> None:
            async with ApiClient(resolve_server(flag=None, env=env), credentials=resolve_credentials(env=env)) as c:
                await measure(c, count=WARM_PODS, rate=5, image="busybox", command=["sleep", "86400"],
                              timeout=120)
                for rate in a.rates:
                    # The last run's deleted pods are torn down on the node after the API forgot
                    # them; that work is not this run's.
                    await asyncio.sleep(a.settle)
                    idle = cpu_sample(parts, metrics_url)
                    await asyncio.sleep(IDLE_SECONDS)
                    busy = {k: (v - idle[k]) / IDLE_SECONDS for k, v in cpu_sample(parts, metrics_url).items()
                            if not k.startswith(("api ", "etcd "))}
                    print(f"real node idle before the run, CPU %: "
                          f"{', '.join(f'{k} {100 * v:.1f}' for k, v in busy.items())}", flush=True)
                    print(f"real node: {a.real_pods} pods at {rate:g}/s ...", flush=True)
                    r = await measure(c, count=a.real_pods, rate=rate, image="busybox",
                                      command=["sleep", "86400"], timeout=a.timeout,
                                      sample=lambda: cpu_sample(parts, metrics_url))
                    report(f"real node, {a.real_pods} pods at {rate:g}/s", r, count=a.real_pods, goal=REAL_GOAL)
                    if r.cpu:
                        report_cpu(*r.cpu, pods=a.real_pods)
        asyncio.run(body())
    finally:
        teardown(cluster)


def run_hollow(a: argparse.Namespace) -> None:
    count = a.hollow_nodes * a.pods_per_node
    with hollow_cluster(nodes=a.hollow_nodes) as cluster:
        async def body() -> None:
            async with cluster.client() as c:
                print(f"hollow nodes: {count} pods at {a.hollow_rate:g}/s ...", flush=True)
                r = await measure(c, count=count, rate=a.hollow_rate, image="registry.k8s.io/pause:3.9",
                                  command=[], timeout=a.timeout)
                report(f"{a.hollow_nodes} hollow nodes x {a.pods_per_node} pods at {a.hollow_rate:g}/s", r,
                       count=count, goal=HOLLOW_GOAL)
        asyncio.run(body())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real-pods", type=int, default=100)
    ap.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",") if x], default=[20.0, 50.0],
                    help="creation rates for the real node, pods/s (default 20,50)")
    ap.add_argument("--max-pods", type=int, default=0,
                    help=f"the real node's --max-pods (default: the agent's, {MAX_PODS}, or room for --real-pods)")
    ap.add_argument("--run-dir-on-disk", action="store_true",
                    help="the real node's run dir on this machine's disk, not on a tmpfs as a Debian host's /run")
    ap.add_argument("--settle", type=float, default=10,
                    help="seconds to wait before each real-node run, for the last run's pods to be torn down")
    ap.add_argument("--hollow-nodes", type=int, default=100)
    ap.add_argument("--pods-per-node", type=int, default=30)
    ap.add_argument("--hollow-rate", type=float, default=20.0, help="creation rate on hollow nodes, pods/s")
    ap.add_argument("--only", choices=("real", "hollow"), default=None)
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for a run's pods to run")
    a = ap.parse_args()
    print(f"pod startup latency, creation -> all containers running (watch); load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    if a.only in (None, "real"):
        run_real(a)
    if a.only in (None, "hollow"):
        run_hollow(a)


if __name__ == "__main__":
    main()
