"""Probe cost: the agent's CPU while it probes N pods, 3 network probes each, every second.

    python bench/probes.py [--pods 100] [--seconds 30] [--timeout 900]

Starts a private all-in-one cluster as bench/density.py does, applies N pods
of two busybox httpd containers each — `web` with a readiness httpGet and a
liveness tcpSocket probe, `side` with a readiness httpGet probe, all with
periodSeconds 1 — waits until every pod is Ready, then reads the agent's CPU
time (utime + stime of /proc/PID/stat) over --seconds and prints it as a
share of one core beside the budget: 15 % of one core for 300 probes a
second. Probes run as coroutines on the agent's event loop (agent/prober),
their sockets made inside each pod's network namespace: no thread and no
process per probe. Also prints the agent's threads, which must not grow with
the probes. The figure is the agent's whole steady state with those pods
(heartbeats, informers, status writes, stats), not the probes alone.

Then deletes every pod and purges the cluster. Needs root, etcd and busybox.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from density import Cluster, free_port, teardown  # noqa: E402

BUDGET = 0.15          # of one core
# On a loaded machine the agent can miss its heartbeat (8 s grace) while it starts 100 pods; the
# node's unreachable/not-ready NoExecute taints would then evict every pod, and the bench would
# measure nothing. It measures probes, not node lifecycle: its pods tolerate those taints.
TOLERATIONS = ("  tolerations:\n"
               "  - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute}\n"
               "  - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute}\n")
PROBES_PER_POD = 3


def manifest(n: int, *, probes: bool) -> str:
    def container(name: str, port: int, liveness: bool) -> str:
        text = (f"  - name: {name}\n    image: busybox\n"
                f"    command: [sh, -c, 'mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p {port} -h /www']\n")
        if probes:
            text += f"    readinessProbe: {{httpGet: {{path: /healthz, port: {port}}}, periodSeconds: 1}}\n"
        if probes and liveness:
            text += f"    livenessProbe: {{tcpSocket: {{port: {port}}}, periodSeconds: 1}}\n"
        return text
    docs = [f"apiVersion: v1\nkind: Pod\nmetadata: {{name: probes-{i:03d}, labels: {{app: probes}}}}\n"
            f"spec:\n  terminationGracePeriodSeconds: 1\n{TOLERATIONS}  containers:\n"
            + container("web", 8080, True) + container("side", 8081, False)
            for i in range(n)]
    return "---\n".join(docs)


def measure(cluster: Cluster, *, n: int, probes: bool, seconds: float, timeout: float) -> tuple[float, float]:
    """Apply the pods, wait until all are Ready, return (the agent's share of a core, seconds to Ready)."""
    path = cluster.base / ("probed.yaml" if probes else "plain.yaml")
    path.write_text(manifest(n, probes=probes))
    print(f"applying {n} pods {'with' if probes else 'without'} probes ...", flush=True)
    cluster.skiff("apply", "-f", str(path))
    ramp = wait_all_ready(cluster, n=n, timeout=timeout)
    time.sleep(5)   # the last status writes settle
    agent = cluster.pid("agent")
    before, t0 = cpu_seconds(agent), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(agent) - before) / (time.monotonic() - t0), ramp


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def wait_all_ready(cluster: Cluster, *, n: int, timeout: float) -> float:
    started = time.monotonic()
    last = -1
    while True:
        table = cluster.skiff("get", "pods", "--no-headers").stdout.splitlines()
        ready = sum(1 for row in table if row.split()[1] == "2/2")
        if ready != last:
            print(f"  {ready}/{n} Ready", flush=True)
            last = ready
        if ready == n:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise SystemExit(f"only {ready}/{n} pods Ready after {timeout:g}s")
        time.sleep(3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=30.0, help="the measuring window")
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for every pod to be Ready")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("probes.py needs root (it runs real containers)")
    base = Path(tempfile.mkdtemp(prefix="skiff-bench-probes-"))
    cluster = Cluster(base=base, ports={k: free_port() for k in ("etcd", "peer", "api", "cpm", "agent", "agentm")},
                      node_name="skiff-bench-" + base.name.rsplit("-", 1)[-1].replace("_", "x").lower())
    try:
        print("bootstrapping busybox and starting a private cluster ...", flush=True)
        cluster.skiff("image", "--data-dir", str(cluster.data_dir), "bootstrap", "busybox")
        up = cluster.skiff(*cluster.up_args(), check=False)
        if up.returncode != 0:
            raise SystemExit(f"skiff up failed:\n{up.stdout}{up.stderr}{cluster.log_tails()}")
        agent = cluster.pid("agent")
        threads_idle = threads(agent)
        plain, _ = measure(cluster, n=args.pods, probes=False, seconds=args.seconds, timeout=args.timeout)
        threads_plain = threads(agent)
        print("deleting them ...", flush=True)
        cluster.skiff("delete", "pods", "--all", "--timeout", "300s")
        share, ramp = measure(cluster, n=args.pods, probes=True, seconds=args.seconds, timeout=args.timeout)
        probes = args.pods * PROBES_PER_POD
        print(f"\nprobes: {args.pods} pods x {PROBES_PER_POD} probes at periodSeconds 1 = {probes} probes/s "
              f"(all Ready after {ramp:.0f} s); CPU over {args.seconds:g} s windows")
        print(f"  agent CPU, the same pods without probes  {plain * 100:6.1f} % of one core")
        print(f"  agent CPU, with the probes               {share * 100:6.1f} % of one core   budget "
              f"{BUDGET * 100:g} %: {'ok' if share <= BUDGET else 'MISSED'}")
        print(f"  the probes' share                        {(share - plain) * 100:6.1f} % "
              f"({(share - plain) / probes * 1e6:.0f} us of CPU a probe)")
        print(f"  agent threads                 {threads_idle} idle, {threads_plain} with the pods, "
              f"{threads(agent)} with the probes")
        print(f"  machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (other work adds noise)")
    finally:
        teardown(cluster)


if __name__ == "__main__":
    main()
