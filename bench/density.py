"""Pod density: what N sleeping pods cost on one node, beyond their own processes.

    python bench/density.py [--pods 100] [--timeout 600] [--max-pods N]
    python bench/density.py --pods 500        # issue 17: Running within 60 s, agent <= 100 MiB

Starts a private all-in-one cluster the way a user does (`skiff up --detach`
with its own data dir, run dir, client config and free loopback ports),
applies N busybox pods running `sleep`, waits until all are Running (timed
from the start of the apply; the node's `--max-pods` is raised to N when N is
above kubelet's 110, and its pod CIDR widened with `--node-cidr-mask-size`
when N is above a /24's 253 addresses, e.g. /23 for 500), and prints:

  ramp              seconds from the apply to all N Running. Goal (issue 17):
                    500 pods within 60 s.

  agent RSS         VmRSS of the agent (its pid from the pid file `up`
                    writes), idle and with N pods. Goal: <= 60 MiB up to
                    110 pods, <= 100 MiB at 500 (issue 17).
  per-pod overhead  the proportional set size (PSS, /proc/PID/smaps_rollup:
                    shared pages divided among their sharers, so sums are
                    honest) of every Skiff process on the node (the agent,
                    its zygote and the zygote's one spare process, and any
                    per-container process of ours — there should be none;
                    found as the agent's descendants running its interpreter),
                    with N pods minus idle, divided by N. The user processes
                    (`sleep`) are measured apart and not counted.
                    Goal: <= 1 MiB a pod. Peers: containerd's Go shim
                    ~11 MiB a container, conmon ~0.3 MiB.
  MemAvailable      the system's MemAvailable, idle minus with N pods,
                    divided by N: a cross-check that also counts the kernel's
                    share (cgroups, namespaces, overlay mounts, veths) and the
                    user processes. Noisy when other work runs on the machine.

Then deletes every pod, runs `skiff down --purge`, and removes its temp dir:
nothing is left behind. Needs root, etcd and busybox-static.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._cluster import free_port  # noqa: E402

MiB = 1024 * 1024
AGENT_GOAL_MIB = 60.0          # up to kubelet's 110 pods
AGENT_GOAL_500_MIB = 100.0     # issue 17: 500 pods on one node
RAMP_GOAL_500_S = 60.0         # issue 17: 500 pods Running within 60 s
PER_POD_GOAL_MIB = 1.0
PEERS = (("containerd shim (Go)", 11.0), ("conmon", 0.3))


@dataclass(frozen=True)
class Cluster:
    """A private cluster's directories and ports, and the skiff command against it."""
    base: Path
    ports: dict[str, int]
    node_name: str
    tag: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def run_dir(self) -> Path:
        return self.base / "volatile" / "run"

    def volatile_run_dir(self) -> None:
        """The run dir on a tmpfs of its own (mounted on its parent, so `down --purge` may empty
        it), as a Debian host's /run is (skiff up's default run dir is /run/skiff): the runtime's
        per-pod state files then cost what they cost there, not what this machine's disk charges
        (its /run is on ext4: ~0.65 ms a small file or dir). teardown() unmounts it."""
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=1g", "skiff-bench-run",
                        str(self.run_dir.parent)], check=True)

    def env(self) -> dict[str, str]:
        # A private kubeconfig: `up` adds context skiff there, never to ~/.kube/config.
        env = dict(os.environ, SKIFF_CONFIG=str(self.base / "client-config"),
                   KUBECONFIG=str(self.base / "kubeconfig"),
                   PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
        env.pop("SKIFF_SERVER", None)
        return env

    def skiff(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "skiff.cli.main", *args], cwd=self.base, env=self.env(),
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise SystemExit(f"skiff {' '.join(args[:2])} failed ({result.returncode}):\n{result.stderr}")
        return result

    def up_args(self) -> list[str]:
        p = self.ports
        return ["up", "--detach", "--data-dir", str(self.data_dir), "--run-dir", str(self.run_dir),
                "--node-name", self.node_name, "--etcd-port", str(p["etcd"]), "--etcd-peer-port", str(p["peer"]),
                # Machine-wide names of its own: never the bridge, table or cgroups of a cluster running here.
                "--bridge", f"skiff-d{self.tag}", "--nft-table", f"skiff_density_{self.tag}",
                "--cgroup-parent", f"skiff-density-{self.tag}",
                # A shared machine: the pods stay fenced in (no source NAT out of the host; decision 30).
                "--pod-egress", "none",
                "--cluster-cidr", f"10.{200 + int(self.tag, 16) % 50}.0.0/16",
                "--api-port", str(p["api"]), "--controlplane-metrics-port", str(p["cpm"]),
                "--agent-port", str(p["agent"]), "--agent-metrics-port", str(p["agentm"]),
                "--start-timeout", "120"]

    def log_tails(self, lines: int = 20) -> str:
        out = []
        for log in sorted((self.data_dir / "logs").glob("*.log")):
            out.append(f"--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    def pid(self, component: str) -> int:
        return int((self.data_dir / "run" / f"{component}.pid").read_text().split()[0])


# ---------------------------------------------------------------- /proc readings

def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(f"/proc/{pid}/status has no {field}")


def rollup_kib(pid: int) -> dict[str, int]:
    """/proc/PID/smaps_rollup as {field: kB}."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        out[name.rstrip(":")] = int(value)
    return out


def pss_kib(pid: int) -> int:
    return rollup_kib(pid)["Pss"]


def uss_kib(pid: int) -> int:
    """Pages only this process maps: what it costs beyond what it shares."""
    r = rollup_kib(pid)
    return r["Private_Clean"] + r["Private_Dirty"]


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise KeyError("/proc/meminfo has no MemAvailable")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def descendants(root: int) -> list[int]:
    """Every process below `root` (children first found through each ppid)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = _ppid(int(entry.name))
        except OSError:
            continue  # ended meanwhile
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def exe_id(pid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/exe")
    except OSError:
        return None
    return st.st_dev, st.st_ino


@dataclass(frozen=True)
class Snapshot:
    agent_rss_kib: int
    skiff_pss_kib: dict[int, int]   # pid -> PSS: the agent, its zygote and spare, per-container ones
    user_pss_kib: dict[int, int]    # pid -> PSS: the pods' own programs
    init_uss_kib: dict[int, int]    # pid -> USS of per-container Skiff processes (not agent, zygote, spare)
    mem_available_kib: int
    controlplane_rss_kib: int
    etcd_rss_kib: int


def snapshot(cluster: Cluster) -> Snapshot:
    agent = cluster.pid("agent")
    interpreter = exe_id(agent)
    skiff, user = {agent: pss_kib(agent)}, {}
    for pid in descendants(agent):
        try:
            # Forked from the zygote, the agent's helpers run its interpreter;
            # a container's program was exec'd (posix_spawn) from the image.
            (skiff if exe_id(pid) == interpreter else user)[pid] = pss_kib(pid)
        except OSError:
            continue  # ended meanwhile
    # Node-wide: the agent, its zygote, the zygote's spare (forked ahead of the next start).
    node_wide = {agent} | {pid for pid in skiff if pid != agent and _ppid(pid) == agent} | {
        pid for pid in skiff if _comm(pid) == "skiff-spare"}
    uss = {}
    for pid in skiff:
        if pid not in node_wide:
            try:
                uss[pid] = uss_kib(pid)
            except OSError:
                continue
    return Snapshot(agent_rss_kib=status_kib(agent, "VmRSS"), skiff_pss_kib=skiff, user_pss_kib=user,
                    init_uss_kib=uss,
                    mem_available_kib=mem_available_kib(),
                    controlplane_rss_kib=status_kib(cluster.pid("controlplane"), "VmRSS"),
                    etcd_rss_kib=status_kib(cluster.pid("etcd"), "VmRSS"))


# ---------------------------------------------------------------- the run

def manifest(n: int) -> str:
    docs = [f"apiVersion: v1\nkind: Pod\nmetadata: {{name: density-{i:03d}, labels: {{app: density}}}}\n"
            f"spec:\n  containers:\n  - {{name: sleep, image: busybox, command: [sleep, '86400']}}\n"
            for i in range(n)]
    return "---\n".join(docs)


def wait_all_running(cluster: Cluster, *, n: int, timeout: float) -> float:
    """Poll `skiff get pods -o json` until n pods are Running; returns the seconds it took."""
    started = time.monotonic()
    last = -1
    while True:
        pods = json.loads(cluster.skiff("get", "pods", "-o", "json").stdout)["items"]
        phases = [p.get("status", {}).get("phase", "Pending") for p in pods]
        running = phases.count("Running")
        if running != last:
            print(f"  {running}/{n} Running", flush=True)
            last = running
        if running == n:
            return time.monotonic() - started
        bad = [p["metadata"]["name"] for p in pods if p.get("status", {}).get("phase") in ("Failed", "Succeeded")]
        if bad:
            raise SystemExit(f"pods ended instead of running: {bad[:5]}; see `skiff describe pod {bad[0]}`")
        if time.monotonic() - started > timeout:
            raise SystemExit(f"only {running}/{n} pods Running after {timeout:g}s")
        time.sleep(2)


def mib(kib: float) -> str:
    return f"{kib / 1024:7.2f} MiB"


def report(*, n: int, idle: Snapshot, full: Snapshot, ramp_seconds: float) -> None:
    inits = [full.skiff_pss_kib[pid] for pid in full.init_uss_kib if pid in full.skiff_pss_kib]
    skiff_delta = sum(full.skiff_pss_kib.values()) - sum(idle.skiff_pss_kib.values())
    per_pod = skiff_delta / n
    available_delta = (idle.mem_available_kib - full.mem_available_kib) / n
    user = sum(full.user_pss_kib.values())
    verdict = lambda ok: "ok" if ok else "MISSED"  # noqa: E731
    agent_goal = AGENT_GOAL_MIB if n <= 110 else AGENT_GOAL_500_MIB
    ramp_goal = f"   goal (500 pods) <= {RAMP_GOAL_500_S:g} s: {verdict(ramp_seconds <= RAMP_GOAL_500_S)}" \
        if n >= 500 else ""
    print(f"\ndensity: {n} sleeping busybox pods on one node, all Running {ramp_seconds:.1f} s after the apply "
          f"began{ramp_goal}   (load average {os.getloadavg()[0]:.1f})")
    print(f"  agent RSS, idle                   {mib(idle.agent_rss_kib)}")
    print(f"  agent RSS, {n:3d} pods               {mib(full.agent_rss_kib)}   goal <= {agent_goal:g} MiB: "
          f"{verdict(full.agent_rss_kib / 1024 <= agent_goal)}")
    print(f"  Skiff processes on the node       {len(idle.skiff_pss_kib)} idle -> {len(full.skiff_pss_kib)} "
          f"with pods ({len(inits)} of them per container)")
    print(f"  Skiff PSS, idle                   {mib(sum(idle.skiff_pss_kib.values()))}")
    print(f"  Skiff PSS, {n:3d} pods               {mib(sum(full.skiff_pss_kib.values()))}")
    print(f"  per-pod overhead (PSS delta / N)  {mib(per_pod)}   goal <= {PER_POD_GOAL_MIB:g} MiB: "
          f"{verdict(per_pod / 1024 <= PER_POD_GOAL_MIB)}")
    if inits:
        print(f"    of which a per-container one    {mib(sum(inits) / len(inits))} (mean PSS; "
              f"{mib(sum(full.init_uss_kib.values()) / len(inits)).strip()} of it private (USS))")
    print(f"    node-wide processes' growth/pod {mib((skiff_delta - sum(inits)) / n)}")
    print(f"  Skiff PSS total / N (incl. agent) {mib(sum(full.skiff_pss_kib.values()) / n)}")
    for name, peer in PEERS:
        print(f"  peer: {name:26s} {peer:7.2f} MiB a container   Skiff/peer {per_pod / 1024 / peer:.2f}x")
    print(f"  user processes (not counted)      {mib(user)} PSS for {len(full.user_pss_kib)} processes")
    print(f"  MemAvailable drop / N             {mib(available_delta)}   (cross-check: kernel objects and "
          "user processes included; other work on the machine adds noise)")
    print(f"  control plane RSS                 {mib(idle.controlplane_rss_kib)} -> "
          f"{mib(full.controlplane_rss_kib)};  etcd RSS {mib(idle.etcd_rss_kib)} -> {mib(full.etcd_rss_kib)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=100, help="how many pods (default 100)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for all to be Running")
    ap.add_argument("--max-pods", type=int, default=0,
                    help="the node's --max-pods (default: 110, or --pods when that is more)")
    ap.add_argument("--run-dir-on-disk", action="store_true",
                    help="keep the agent's run dir on this machine's disk, not on a tmpfs as a Debian host's /run")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("density.py needs root (it runs real containers)")
    base = Path(tempfile.mkdtemp(prefix="skiff-bench-density-"))
    cluster = Cluster(base=base, ports={k: free_port() for k in ("etcd", "peer", "api", "cpm", "agent", "agentm")},
                      # mkdtemp suffixes may hold "_", which no node name (RFC 1123) may: up would fail
                      node_name="skiff-bench-" + base.name.rsplit("-", 1)[-1].replace("_", "x"))
    try:
        if not args.run_dir_on_disk:
            cluster.volatile_run_dir()
        print("bootstrapping busybox and starting a private cluster ...", flush=True)
        cluster.skiff("image", "--data-dir", str(cluster.data_dir), "bootstrap", "busybox")
        max_pods = args.max_pods or max(110, args.pods)
        # A node's pod CIDR holds 2^(32-N)-3 pods (a /24: 253): above that, a shorter one (500: /23).
        mask = max(m for m in range(17, 25) if 2 ** (32 - m) - 3 >= max_pods)
        up = cluster.skiff(*cluster.up_args(), *(("--max-pods", str(max_pods)) if max_pods != 110 else ()),
                           *(("--node-cidr-mask-size", str(mask)) if mask != 24 else ()), check=False)
        if up.returncode != 0:  # the logs go with the purge: show them now
            raise SystemExit(f"skiff up failed:\n{up.stdout}{up.stderr}{cluster.log_tails()}")
        time.sleep(2)  # let the agent finish its first resync and stats pass before the idle reading
        idle = snapshot(cluster)
        (base / "pods.yaml").write_text(manifest(args.pods))
        print(f"applying {args.pods} pods ...", flush=True)
        began = time.monotonic()
        cluster.skiff("apply", "-f", str(base / "pods.yaml"))
        wait_all_running(cluster, n=args.pods, timeout=args.timeout)
        ramp = time.monotonic() - began
        time.sleep(2)  # status writes and the informer settle
        full = snapshot(cluster)
        report(n=args.pods, idle=idle, full=full, ramp_seconds=ramp)
    finally:
        teardown(cluster)


def teardown(cluster: Cluster) -> None:
    print("\ndeleting the pods and purging the cluster ...", flush=True)
    if (cluster.data_dir / "run" / "agent.pid").exists():
        cluster.skiff("delete", "pods", "--all", "--now", "--timeout", "300s", check=False)
    if (cluster.data_dir / "run").exists():
        down = cluster.skiff("down", "--data-dir", str(cluster.data_dir), "--run-dir", str(cluster.run_dir),
                             "--purge", check=False)
        if down.returncode != 0:
            print(f"warning: skiff down --purge failed:\n{down.stdout}{down.stderr}", file=sys.stderr)
    if os.path.ismount(cluster.run_dir.parent):   # volatile_run_dir's tmpfs, once down has emptied it
        subprocess.run(["umount", str(cluster.run_dir.parent)], check=False)
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split()[4].startswith(str(cluster.base) + "/")]
    if mounts:  # never rmtree across a mount
        raise SystemExit(f"left mounted under {cluster.base}: {mounts}; not removing it")
    shutil.rmtree(cluster.base, ignore_errors=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
