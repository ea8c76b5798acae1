"""`skiff up` / `skiff down`: the all-in-one cluster as background processes on this machine.

`up` starts, in order, etcd, `python -m controlplane.main` and `python -m
agent.main`, each in its own session (so a Ctrl-C in the terminal reaches
only `skiff up`, which then stops them in reverse order), with its output in
DATA/logs/<component>.log and its PID in DATA/run/<component>.pid. Each must
be healthy before the next starts: etcd answers /health, the API answers a
List, the node reports Ready. A component that dies or never gets healthy is
reported with the last line of its log and the log's path, and everything
already started is stopped again.

`down` stops what the pid files name: SIGTERM, then SIGKILL after a timeout,
and only processes whose start time still matches the pid file, so a PID
the kernel has reused since is never signalled. Without --purge the pods'
containers keep running, as with k3s: they outlive the agent, which adopts
them again at the next `up`. `--purge` first deletes every pod through the
API (so the agent stops their containers and frees what they held), then
removes the node's network, DATA and the run dir.

Every address is an option, so a test can run a private cluster beside a
real one.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from skiff.cli._common import CliError
from skiff.cli._processes import (last_log_line, mounts_under, other_agents, port_taken, read_pid_file,
                                  remove_empty_cgroups, stop_pid, write_pid_file)
from skiff.client import ApiClient, ApiError, NotFound
from skiff.config import ClientConfig, config_path, write_config

ROOT = Path(__file__).resolve().parents[2]  # the source tree, for PYTHONPATH of the components


@dataclass(frozen=True)
class ClusterConfig:
    data_dir: Path
    run_dir: Path
    node_name: str
    etcd_binary: str = "/usr/bin/etcd"
    etcd_port: int = 2379
    etcd_peer_port: int = 2380
    api_port: int = 6443
    controlplane_metrics_port: int = 10257
    agent_port: int = 10250
    agent_metrics_port: int = 10255
    with_agent: bool = True
    # The node's machine-wide names: a second cluster on the same machine (a
    # test beside a real one) gives its own, so the two never share a bridge,
    # an nftables table, a cgroup parent or pod addresses.
    bridge: str = "skiff0"
    nft_table: str = "skiff"
    cgroup_parent: str = "skiff"
    cluster_cidr: str = "10.244.0.0/16"
    bootstrap_busybox: bool = True
    start_timeout: float = 60.0
    stop_timeout: float = 15.0

    @property
    def api_address(self) -> str:
        return f"127.0.0.1:{self.api_port}"

    @property
    def pid_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


@dataclass(frozen=True)
class Component:
    name: str          # etcd, controlplane, agent
    argv: tuple[str, ...]
    marker: str        # must appear in /proc/PID/cmdline before down signals it


def components(config: ClusterConfig) -> list[Component]:
    etcd = f"127.0.0.1:{config.etcd_port}"
    peer = f"http://127.0.0.1:{config.etcd_peer_port}"
    out = [
        Component("etcd", (
            config.etcd_binary, "--name", "skiff", "--data-dir", str(config.data_dir / "etcd"),
            "--listen-client-urls", f"http://{etcd}", "--advertise-client-urls", f"http://{etcd}",
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"skiff={peer}"), marker=str(config.data_dir / "etcd")),
        Component("controlplane", (
            sys.executable, "-m", "controlplane.main", "--etcd", etcd, "--listen", config.api_address,
            "--metrics-listen", f"127.0.0.1:{config.controlplane_metrics_port}",
            "--cluster-cidr", config.cluster_cidr), marker="controlplane.main"),
    ]
    if config.with_agent:
        out.append(Component("agent", (
            sys.executable, "-m", "agent.main", "--server", config.api_address, "--node-name", config.node_name,
            "--listen", f"127.0.0.1:{config.agent_port}",
            "--metrics-listen", f"127.0.0.1:{config.agent_metrics_port}",
            "--data-dir", str(config.data_dir), "--run-dir", str(config.run_dir),
            "--bridge", config.bridge, "--nft-table", config.nft_table,
            "--cgroup-parent", config.cgroup_parent), marker="agent.main"))
    return out


def running_pid(config: ClusterConfig, component: Component) -> int | None:
    """The PID of the component if the process its pid file names still runs."""
    return read_pid_file(config.pid_dir / f"{component.name}.pid", marker=component.marker)


# ---------------------------------------------------------------- health checks

def _etcd_healthy(config: ClusterConfig) -> bool:
    try:
        # No proxy: an http_proxy in the environment must not intercept loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{config.etcd_port}/health", timeout=1) as r:
            return b'"true"' in r.read()
    except OSError:
        return False


async def _api_answers(config: ClusterConfig) -> bool:
    async with ApiClient(config.api_address) as client:
        try:
            await client.list("Node", "", timeout=2)
            return True
        except ApiError:
            return False


async def _node_ready(config: ClusterConfig) -> bool:
    async with ApiClient(config.api_address) as client:
        try:
            node = await client.get("Node", config.node_name, "", timeout=2)
        except (NotFound, ApiError):
            return False
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def _healthy(config: ClusterConfig, component: Component) -> bool:
    if component.name == "etcd":
        return _etcd_healthy(config)
    if component.name == "controlplane":
        return asyncio.run(_api_answers(config))
    return asyncio.run(_node_ready(config))


# ---------------------------------------------------------------- up

class Cluster:
    """The processes `up` started, in start order."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.started: list[tuple[Component, subprocess.Popen]] = []

    def start(self, component: Component) -> None:
        config = self.config
        log_path = config.log_dir / f"{component.name}.log"
        env = _component_env()
        with open(log_path, "ab") as log:
            try:
                proc = subprocess.Popen(component.argv, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, cwd=config.data_dir, env=env,
                                        start_new_session=True)
            except OSError as exc:
                hint = "; install it (deploy/install.sh) or pass --etcd-binary" if component.name == "etcd" else ""
                raise CliError(f"cannot run {component.name} ({component.argv[0]}): "
                               f"{exc.strerror or exc}{hint}") from None
        self.started.append((component, proc))
        write_pid_file(config.pid_dir / f"{component.name}.pid", proc.pid)
        deadline = time.monotonic() + config.start_timeout
        while not _healthy(config, component):
            if proc.poll() is not None:
                last = last_log_line(log_path)
                raise CliError(f"{component.name} exited at start (exit code {proc.returncode})"
                               + (f": {last}" if last else "") + f"; full log: {log_path}")
            if time.monotonic() > deadline:
                what = "did not report Ready" if component.name == "agent" else "did not become healthy"
                raise CliError(f"{component.name} {what} within {config.start_timeout:g}s; see its log: {log_path}")
            time.sleep(0.2)

    def first_exited(self) -> tuple[Component, subprocess.Popen] | None:
        for component, proc in self.started:
            if proc.poll() is not None:
                return component, proc
        return None

    def stop(self) -> None:
        """Stop in reverse order (the agent before the API it reports to, etcd last)."""
        for component, proc in reversed(self.started):
            print(f"stopping {component.name} (pid {proc.pid}) ...", end=" ", flush=True)
            stop_pid(proc.pid, timeout=self.config.stop_timeout, proc=proc)
            proc.wait()
            (self.config.pid_dir / f"{component.name}.pid").unlink(missing_ok=True)
            print("ok", flush=True)
        self.started.clear()
        (self.config.pid_dir / "cluster.json").unlink(missing_ok=True)


def up(config: ClusterConfig, *, detach: bool, client_config: Path) -> int:
    wanted = components(config)
    running = {c.name: pid for c in wanted if (pid := running_pid(config, c)) is not None}
    if running:
        listed = ", ".join(f"{name} pid {pid}" for name, pid in running.items())
        if len(running) == len(wanted):
            print(f"the cluster is already running ({listed}); `skiff down` stops it")
            return 0
        raise CliError(f"part of a cluster is running ({listed}); run `skiff down` first")
    ports = [("etcd", config.etcd_port), ("etcd peer", config.etcd_peer_port), ("API", config.api_port),
             ("control plane metrics", config.controlplane_metrics_port)]
    if config.with_agent:
        ports += [("agent", config.agent_port), ("agent metrics", config.agent_metrics_port)]
    for what, port in ports:
        if port_taken(port):
            raise CliError(f"127.0.0.1:{port} (the {what} port) is already in use by another program")
    for d in (config.data_dir, config.pid_dir, config.log_dir):
        d.mkdir(parents=True, exist_ok=True)

    if config.with_agent and config.bootstrap_busybox:
        _ensure_busybox(config)
    # `down` reads the addresses from here, so it needs no port flags of its own.
    (config.pid_dir / "cluster.json").write_text(json.dumps(
        {"api_port": config.api_port, "node_name": config.node_name, "bridge": config.bridge,
         "nft_table": config.nft_table, "cgroup_parent": config.cgroup_parent}) + "\n")
    cluster = Cluster(config)
    try:
        for component in wanted:
            label = {"agent": f"agent (node {config.node_name})"}.get(component.name, component.name)
            print(f"starting {label} ...", end=" ", flush=True)
            try:
                cluster.start(component)
            except CliError:
                print("failed", flush=True)
                raise
            print("ok", flush=True)
        write_config(path=client_config, config=ClientConfig(server=config.api_address))
        print(f"cluster is up: API at {config.api_address}, client config {client_config}, "
              f"logs in {config.log_dir}")
        if detach:
            cluster.started.clear()  # they keep running; `skiff down` stops them
            return 0
        _supervise(cluster)
        return 0
    except BaseException:
        cluster.stop()
        raise


def _ensure_busybox(config: ClusterConfig) -> None:
    """The offline `busybox` image the examples use, made from the host's
    busybox-static if the node's store lacks it (`skiff image bootstrap`
    only checks when it is there). A failure is reported, not fatal: pods
    naming busybox will then say ErrImageNeverPull."""
    print("preparing image busybox ...", end=" ", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "skiff.cli.main", "image", "--data-dir", str(config.data_dir), "bootstrap", "busybox"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=_component_env())
    if result.returncode == 0:
        print("ok", flush=True)
    else:
        reason = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        print(f"failed ({reason}); pods that use busybox will not start", flush=True)


def _component_env() -> dict[str, str]:
    """The environment of child processes: this source tree importable."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))


def _supervise(cluster: Cluster) -> None:
    """Block until Ctrl-C, SIGTERM or a component exiting; then stop everything."""
    def terminate(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        # Printed inside the try: a Ctrl-C right after it is a requested stop, not a failed start.
        print("running in the foreground; press Ctrl-C to stop", flush=True)
        while (exited := cluster.first_exited()) is None:
            time.sleep(0.5)
        component, proc = exited
        log = cluster.config.log_dir / f"{component.name}.log"
        raise CliError(f"{component.name} exited (exit code {proc.returncode}); see its log: {log}")
    except KeyboardInterrupt:
        print()
    finally:
        signal.signal(signal.SIGTERM, previous)
        cluster.stop()


def _delete_all_pods(config: ClusterConfig, *, timeout: float, grace_period: int | None = None) -> None:
    """Delete every pod through the API and wait until the agent has confirmed
    each (its containers stopped, mounts, cgroups and addresses freed)."""
    async def delete_all() -> None:
        async with ApiClient(config.api_address) as client:
            pods, _ = await client.list("Pod", "")
            if not pods:
                return
            print(f"deleting {len(pods)} pod(s) ...", end=" ", flush=True)
            for pod in pods:
                try:
                    await client.delete("Pod", pod.metadata.name, pod.metadata.namespace,
                                        grace_period_seconds=grace_period)
                except NotFound:
                    pass

            async def all_gone() -> None:
                remaining, revision = await client.list("Pod", "")
                left = {(p.metadata.namespace, p.metadata.name) for p in remaining}
                if not left:
                    return
                async for event_type, obj, _rv in client.watch("Pod", "", resource_version=revision):
                    if event_type == "DELETED" and obj is not None:
                        left.discard((obj.metadata.namespace, obj.metadata.name))
                        if not left:
                            return

            await asyncio.wait_for(all_gone(), timeout=timeout)
            print("ok", flush=True)

    try:
        asyncio.run(delete_all())
    except (ApiError, asyncio.TimeoutError) as exc:
        reason = exc.message if isinstance(exc, ApiError) else f"not all gone after {timeout:g}s"
        print(f"\nwarning: could not delete every pod ({reason}); their containers may still run", flush=True)


def _teardown_node(config: ClusterConfig) -> None:
    """Remove what the agent set up for the whole node: the bridge, veths and
    nftables table, and its (by now empty) parent cgroup."""
    state_dir = config.data_dir / "network"
    if not state_dir.exists():
        return  # no agent ever ran from this data dir
    # These are per machine: another cluster's agent (a test cluster beside a
    # real one) may be using them right now.
    others = other_agents()
    shared = (config.bridge, config.nft_table, config.cgroup_parent) == (
        ClusterConfig.bridge, ClusterConfig.nft_table, ClusterConfig.cgroup_parent)
    if others and shared:
        print(f"leaving the node network (bridge {config.bridge}, nftables table inet {config.nft_table}) and "
              f"cgroup {config.cgroup_parent}: another skiff agent runs on this machine "
              f"(pid {', '.join(map(str, others))})", flush=True)
        return
    left = remove_empty_cgroups(config.cgroup_parent)
    if left:
        print(f"warning: cgroups still in use, not removed: {', '.join(left)}", flush=True)
    try:
        from agent.network import PodNetworkManager

        try:
            pod_cidr = json.loads((state_dir / "pods.json").read_text()).get("podCIDR") or "10.244.0.0/24"
        except (OSError, ValueError):
            pod_cidr = "10.244.0.0/24"  # no allocations recorded: any CIDR opens the empty state
        print("removing the node network ...", end=" ", flush=True)
        PodNetworkManager(pod_cidr=pod_cidr, state_dir=state_dir, bridge=config.bridge,
                          nft_table=config.nft_table).teardown_node()
        print("ok", flush=True)
    except Exception as exc:  # noqa: BLE001 - purge goes on; the user is told what is left
        print(f"\nwarning: could not remove the node network: {exc}", flush=True)


def down(config: ClusterConfig, *, purge: bool, pods_timeout: float = 60.0,
         grace_period: int | None = None) -> int:
    try:
        recorded = json.loads((config.pid_dir / "cluster.json").read_text())
        config = dataclasses.replace(
            config, api_port=int(recorded["api_port"]),
            **{k: str(recorded[k]) for k in ("bridge", "nft_table", "cgroup_parent") if k in recorded})
    except (OSError, ValueError, KeyError, TypeError):
        pass  # started by an older `up`, or never: the defaults stand
    stopped = 0
    if purge and all(running_pid(config, c) for c in components(config)[:2]):
        _delete_all_pods(config, timeout=pods_timeout, grace_period=grace_period)
    for component in reversed(components(config)):
        pid_file = config.pid_dir / f"{component.name}.pid"
        pid = running_pid(config, component)
        if pid is not None:
            print(f"stopping {component.name} (pid {pid}) ...", end=" ", flush=True)
            stop_pid(pid, timeout=config.stop_timeout)
            print("ok", flush=True)
            stopped += 1
        pid_file.unlink(missing_ok=True)
    (config.pid_dir / "cluster.json").unlink(missing_ok=True)
    if not stopped:
        print(f"no cluster is running from {config.data_dir}")
    if not purge:
        if not other_agents():
            # Pods left running keep their cgroups; with none, nothing of ours stays.
            remove_empty_cgroups(config.cgroup_parent)
        return 0
    _teardown_node(config)
    dirs = [d for d in (config.data_dir, config.run_dir) if d.exists()]
    mounts = mounts_under(dirs)
    if mounts:
        raise CliError(f"not removing {', '.join(map(str, dirs))}: still mounted there: {', '.join(mounts[:5])}")
    for d in dirs:
        shutil.rmtree(d)
        print(f"removed {d}")
    return 0


# ---------------------------------------------------------------- wiring

def _common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=Path("/var/lib/skiff"), metavar="DIR",
                   help="etcd data, images, logs (DIR/logs) and pid files (DIR/run); default /var/lib/skiff")
    p.add_argument("--run-dir", type=Path, default=Path("/run/skiff"), metavar="DIR",
                   help="the agent's volatile state; default /run/skiff")
    p.add_argument("--stop-timeout", type=float, default=ClusterConfig.stop_timeout, metavar="SECONDS",
                   help="how long a component gets after SIGTERM before SIGKILL")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "up", help="start the all-in-one cluster on this machine",
        description="Start etcd, the control plane and a node agent on this machine, wait until each is "
                    "healthy, and write the client config. Stays in the foreground (Ctrl-C stops "
                    "everything) unless --detach.")
    p.add_argument("-d", "--detach", action="store_true", help="return once the node is Ready")
    p.add_argument("--node-name", default=socket.gethostname(), metavar="NAME",
                   help="this node's name (default: the host name)")
    _common_flags(p)
    p.add_argument("--etcd-binary", default=ClusterConfig.etcd_binary, metavar="PATH", help="the etcd to run")
    for flag, attr, what in (("--etcd-port", "etcd_port", "etcd clients"),
                             ("--etcd-peer-port", "etcd_peer_port", "etcd peers"),
                             ("--api-port", "api_port", "the control plane's API"),
                             ("--controlplane-metrics-port", "controlplane_metrics_port", "control plane /metrics"),
                             ("--agent-port", "agent_port", "the agent's service"),
                             ("--agent-metrics-port", "agent_metrics_port", "agent /metrics")):
        p.add_argument(flag, type=int, dest=attr, default=getattr(ClusterConfig, attr), metavar="PORT",
                       help=f"loopback port for {what} (default %(default)s)")
    p.add_argument("--bridge", default=ClusterConfig.bridge, metavar="NAME",
                   help="the node's pod bridge (default %(default)s; at most 15 characters)")
    p.add_argument("--nft-table", default=ClusterConfig.nft_table, metavar="NAME",
                   help="Skiff's nftables table, family inet (default %(default)s)")
    p.add_argument("--cgroup-parent", default=ClusterConfig.cgroup_parent, metavar="NAME",
                   help="the cgroup all pods go under, in every hierarchy (default %(default)s)")
    p.add_argument("--cluster-cidr", default=ClusterConfig.cluster_cidr, metavar="CIDR",
                   help="the pod network; each node gets a /24 of it (default %(default)s)")
    p.add_argument("--no-agent", action="store_true",
                   help="start only etcd and the control plane (no node)")
    p.add_argument("--no-bootstrap", action="store_true",
                   help="do not make the busybox image from the host's busybox-static when it is missing")
    p.add_argument("--start-timeout", type=float, default=ClusterConfig.start_timeout, metavar="SECONDS",
                   help="how long each component may take to become healthy")
    p.set_defaults(func=run_up)

    d = subparsers.add_parser(
        "down", help="stop the all-in-one cluster",
        description="Stop the processes `skiff up` started (by the PIDs in DATA/run): SIGTERM, then "
                    "SIGKILL after --stop-timeout. Pods' containers keep running (the agent adopts them "
                    "again at the next `skiff up`); --purge deletes every pod first, then removes the "
                    "node network and the data and run directories.")
    d.add_argument("--purge", action="store_true",
                   help="first delete every pod (their containers stop), then also remove the node network, "
                        "the data directory and the run directory")
    d.add_argument("--grace-period", type=int, default=None, metavar="SECONDS",
                   help="with --purge: the pods' termination grace period (default: each pod's own, "
                        "30 s unless it says otherwise; a program that ignores SIGTERM is killed after it)")
    d.add_argument("--pods-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="with --purge: how long to wait for the pods to be gone")
    _common_flags(d)
    d.set_defaults(func=run_down)


def _config(args: argparse.Namespace) -> ClusterConfig:
    extra = {}
    if hasattr(args, "detach"):
        extra = dict(node_name=args.node_name, etcd_binary=args.etcd_binary, etcd_port=args.etcd_port,
                     etcd_peer_port=args.etcd_peer_port, api_port=args.api_port,
                     controlplane_metrics_port=args.controlplane_metrics_port, agent_port=args.agent_port,
                     agent_metrics_port=args.agent_metrics_port, with_agent=not args.no_agent,
                     bootstrap_busybox=not args.no_bootstrap,
                     start_timeout=args.start_timeout, bridge=args.bridge, nft_table=args.nft_table,
                     cgroup_parent=args.cgroup_parent, cluster_cidr=args.cluster_cidr)
    else:
        extra = dict(node_name="")
    return ClusterConfig(data_dir=args.data_dir.absolute(), run_dir=args.run_dir.absolute(),
                         stop_timeout=args.stop_timeout, **extra)


def run_up(args: argparse.Namespace) -> int:
    return up(_config(args), detach=args.detach, client_config=config_path())


def run_down(args: argparse.Namespace) -> int:
    return down(_config(args), purge=args.purge, pods_timeout=args.pods_timeout,
                grace_period=args.grace_period)
