"""The agent's pod network attach and detach, on the real kernel, in a private network namespace.

    python bench/pod_network.py [--pods 200]

Runs itself again under `unshare --net` (nothing it makes is in the host's
namespace): a PodNetworkManager (agent/network) on a bridge of its own, then
`--pods` pod namespaces (`ip netns add`), each attached in turn, then half of
them detached in turn and the other half from 8 threads at once (as the
agent's executor does when many pods go). Prints the attach and detach times (wall clock, one thread: what a
pod start waits for and, on a busy node, about what it costs in CPU) for the
first and the last ten pods, and p50/p99 over all, beside the budget: 100
pods/s on this machine's cores leaves 1000 * cores / 100 ms of CPU a pod for
everything (API, scheduler, etcd, the agent, the runtime, the network).
The namespaces, the bridge, the table and the state dir are removed at the end.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._cluster import percentile  # noqa: E402

INSIDE = "SKIFF_BENCH_POD_NETWORK_INSIDE"
THREADS = 8


def measure(pods: int) -> None:
    from agent.network import PodNetworkManager
    state_dir = Path(tempfile.mkdtemp(prefix="skiff-bench-net-", dir="/var/tmp"))
    net = PodNetworkManager(pod_cidr="10.251.0.0/20", state_dir=state_dir, bridge="skiffbench0",
                            nft_table="skiff_bench", node_ip="10.251.0.1")
    names = [f"skiff-bench-{os.getpid()}-{i}" for i in range(pods)]
    made: list[str] = []
    try:
        net.ensure_node_network()
        for name in names:
            made.append(name)
            subprocess.run(["ip", "netns", "add", name], check=True)
        attach: list[float] = []
        for i, name in enumerate(names):
            began = time.perf_counter()
            net.attach(pod_id=f"default/bench-{i}", netns_path=Path("/run/netns") / name)
            attach.append(time.perf_counter() - began)
        detach: list[float] = []
        half = pods // 2
        for i in range(half):
            began = time.perf_counter()
            net.detach(f"default/bench-{i}")
            detach.append(time.perf_counter() - began)
        # The other half from THREADS threads at once, as the agent's executor does on a
        # node where pods go (a rolling update, a drain).
        began = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(net.detach, [f"default/bench-{i}" for i in range(half, pods)]))
        parallel = time.perf_counter() - began
        print(f"detach of {pods - half} pods from {THREADS} threads: {parallel:.2f} s, "
              f"{(pods - half) / parallel:.0f} pods/s", flush=True)
        cores = os.cpu_count() or 1
        for label, times in (("attach", attach), ("detach", detach)):
            count = len(times)
            ms = [1000 * t for t in times]
            print(f"{label} of {count} pods in turn: first 10 {sum(ms[:10]) / 10:.2f} ms, last 10 {sum(ms[-10:]) / 10:.2f} ms, "
                  f"p50 {percentile(ms, 50):.2f} ms, p99 {percentile(ms, 99):.2f} ms", flush=True)
        print(f"budget at 100 pods/s on {cores} cores: {1000 * cores / 100:.0f} ms of CPU a pod for everything",
              flush=True)
    finally:
        net.teardown_node()
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)
        subprocess.run(["rm", "-rf", str(state_dir)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=200)
    a = ap.parse_args()
    if os.environ.get(INSIDE):
        measure(a.pods)
        return
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, a bridge, nftables)")
    env = {**os.environ, INSIDE: "1"}
    raise SystemExit(subprocess.run(["unshare", "--net", sys.executable, __file__, *sys.argv[1:]], env=env).returncode)


if __name__ == "__main__":
    main()
