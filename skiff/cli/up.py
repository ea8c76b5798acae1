"""`skiff up` / `skiff down`: the all-in-one cluster as background processes on this machine.

`up` starts, in order, etcd, `python -m controlplane.main` and `python -m
agent.main`, each in its own session (so a Ctrl-C in the terminal reaches
only `skiff up`, which then stops them in reverse order), with its output in
DATA/logs/<component>.log and its PID in DATA/run/<component>.pid. Each must
be healthy before the next starts: etcd answers /health, the API answers a
List, the node reports Ready. A component that dies or never gets healthy is
reported with the last line of its log and the log's path, and everything
this `up` started is stopped again. A component already running is left
alone, so `up` on a partly running cluster starts only what is missing.

Once all are healthy, a supervisor restarts any that exits, with back-off,
counting and logging each restart (skiff/cli/_supervisor.py): in the
foreground `up` is the supervisor; with --detach it starts one as a process
of its own. `skiff status` shows each component.

`down` stops the supervisor first (so it restarts nothing), then what the
pid files name: SIGTERM, then SIGKILL after a timeout, and only processes
whose start time still matches the pid file, so a PID the kernel has reused
since is never signalled. Without --purge the pods' containers keep running,
as with k3s: they outlive the agent, which adopts them again at the next
`up`. `--purge` first deletes every pod through the API (so the agent stops
their containers and frees what they held), then removes the node's
network, DATA and the run dir.

Every address is an option, so a test can run a private cluster beside a
real one.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from skiff.cli._cluster import (AlreadyRunning, ClusterConfig, Component, component_env, components,
                                node_data_dir, node_run_dir,
                                healthy, load_config, running_pid, save_config, start_component)
from skiff.cli._common import CliError
from skiff.cli._monitoring import write_config as write_monitoring_config
from skiff.kubeconfig import default_path as default_kubeconfig, remove as remove_kubeconfig, rest_address, \
    write as write_kubeconfig
from skiff.cli._lab import ensure_lab, remove_lab, remove_node, validate as lab_validate
from skiff.cli._lab import ensure_node as ensure_lab_node, namespaces as lab_namespaces
from skiff.cli._processes import (last_log_line, mounts_under, other_agents, port_taken, remove_empty_cgroups,
                                  stop_pid, write_pid_file)
from skiff.cli._supervisor import Supervisor, start_detached, state_path, supervisor_pid
from skiff.client import ApiClient, ApiError, NotFound
from skiff.config import ClientConfig, config_path, remove_context, write_context

# ---------------------------------------------------------------- up

class Cluster:
    """The processes this `up` started, in start order."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.started: list[tuple[Component, subprocess.Popen]] = []

    def start(self, component: Component) -> None:
        config = self.config
        try:
            proc = start_component(config, component)
        except OSError as exc:
            hint = {"etcd": "; install it (deploy/install.sh) or pass --etcd-binary",
                    "prometheus": "; install it (deploy/install.sh --monitoring)"}.get(component.name, "")
            raise CliError(f"cannot run {component.name} ({component.argv[0]}): "
                           f"{exc.strerror or exc}{hint}") from None
        self.started.append((component, proc))
        self.wait_healthy(component, proc)

    def wait_healthy(self, component: Component, proc: subprocess.Popen | None) -> None:
        config = self.config
        log_path = config.log_dir / f"{component.name}.log"
        deadline = time.monotonic() + config.start_timeout
        while not healthy(config, component):
            if proc is not None and proc.poll() is not None:
                last = last_log_line(log_path)
                raise CliError(f"{component.name} exited at start (exit code {proc.returncode})"
                               + (f": {last}" if last else "") + f"; full log: {log_path}")
            if time.monotonic() > deadline:
                what = "did not report Ready" if component.is_agent else "did not become healthy"
                raise CliError(f"{component.name} {what} within {config.start_timeout:g}s; see its log: {log_path}")
            time.sleep(0.2)

    def stop(self, *, everything: bool = False) -> None:
        """Stop in reverse order (the agent before the API it reports to, etcd
        last): what this `up` started, or with `everything` whatever runs."""
        procs = {component.name: proc for component, proc in self.started}
        for component in reversed(components(self.config)):
            proc = procs.get(component.name)
            pid = running_pid(self.config, component) if everything else (proc.pid if proc else None)
            if pid is None:
                continue
            print(f"stopping {component.name} (pid {pid}) ...", end=" ", flush=True)
            mine = proc if proc is not None and proc.pid == pid else None
            stop_pid(pid, timeout=self.config.stop_timeout, proc=mine)
            if mine is not None:
                mine.wait()
            (self.config.pid_dir / f"{component.name}.pid").unlink(missing_ok=True)
            print("ok", flush=True)
        self.started.clear()
        if everything or not any(running_pid(self.config, c) for c in components(self.config)):
            for name in ("cluster.json", "supervisor.json", "supervisor.pid"):
                (self.config.pid_dir / name).unlink(missing_ok=True)


def _ensure_pki(config: ClusterConfig) -> None:
    """DATA/pki: the cluster CA and every certificate this cluster's parts use (kept if there)."""
    from skiff.pki import fingerprint   # here: cryptography is for secure clusters only
    lab = config.lab
    addresses = {lab.node(i).name: lab.node(i).ip for i in config.nodes} if lab is not None else {}
    first_service_ip = str(ipaddress.ip_network(config.service_cluster_ip_range, strict=False)[1])
    # Hollow nodes are nodes too: one certificate each (decision 34), 127.0.0.1 their address.
    ca = config.pki.ensure_cluster(api_addresses=[config.api_host], service_cluster_ip=first_service_ip,
                                   node_names=[*config.node_names(), *config.hollow_node_names()],
                                   node_addresses=addresses)
    if config.monitoring:   # Prometheus scrapes etcd, which answers only certificates of its own CA
        config.pki.ensure_etcd_client(config.pki.PROMETHEUS_ETCD_CLIENT, user="system:skiff-prometheus")
    print(f"cluster CA {config.pki.ca_file} (SHA-256 fingerprint {fingerprint(ca.cert_pem)})")


def _client_config(config: ClusterConfig) -> ClientConfig:
    if not config.secure:
        return ClientConfig(server=config.api_address)
    pki = config.pki
    return ClientConfig(server=config.api_address, certificate_authority=str(pki.ca_file),
                        client_certificate=str(pki.cert_file("admin")), client_key=str(pki.key_file("admin")))


def _service_range_problem(args: argparse.Namespace) -> str | None:
    """The service CIDR must parse and stay clear of the pod network and the nodes' link (checked again,
    with the node port range, by the control plane)."""
    try:
        services = ipaddress.ip_network(args.service_cluster_ip_range)
    except ValueError as exc:
        return f"--service-cluster-ip-range {args.service_cluster_ip_range!r}: {exc}"
    for flag, value in (("--cluster-cidr", args.cluster_cidr), ("--node-cidr", args.node_cidr)):
        try:
            if services.overlaps(ipaddress.ip_network(value)):
                return f"--service-cluster-ip-range {services}: overlaps {flag} {value}"
        except ValueError:
            pass   # that flag's own check names it
    low, _, high = args.service_node_port_range.partition("-")
    if not (low.isdigit() and (high or low).isdigit() and 1 <= int(low) <= int(high or low) <= 65535):
        return f"--service-node-port-range {args.service_node_port_range!r}: expected FIRST-LAST, e.g. 30000-32767"
    return None


def _node_cidr_mask_problem(args: argparse.Namespace) -> str | None:
    """Each node's pod CIDR (a /--node-cidr-mask-size of --cluster-cidr) must fit the cluster CIDR, be
    there for every node, and hold a real node's --max-pods pods besides its network, gateway and broadcast
    addresses (the agent hands out the rest: 253 on a /24). Hollow nodes take no addresses."""
    mask = args.node_cidr_mask_size
    try:
        cluster = ipaddress.ip_network(args.cluster_cidr)
    except ValueError:
        return None   # --cluster-cidr's own check names it
    if not cluster.prefixlen < mask <= cluster.max_prefixlen:
        return (f"--node-cidr-mask-size {mask}: must be longer than --cluster-cidr {cluster}'s "
                f"/{cluster.prefixlen} and at most /{cluster.max_prefixlen}")
    nodes = (args.nodes or (0 if args.no_agent else 1)) + max(args.hollow_nodes, 0)
    if nodes > 2 ** (mask - cluster.prefixlen):
        return (f"--node-cidr-mask-size {mask}: --cluster-cidr {cluster} has room for "
                f"{2 ** (mask - cluster.prefixlen)} node CIDRs of /{mask}, not {nodes} nodes")
    addresses = 2 ** (cluster.max_prefixlen - mask) - 3
    if (args.nodes or not args.no_agent) and args.max_pods > addresses:
        longest = next((m for m in range(cluster.max_prefixlen, 0, -1) if 2 ** (cluster.max_prefixlen - m) - 3
                       >= args.max_pods), 1)
        return (f"--node-cidr-mask-size {mask}: a node's /{mask} holds {addresses} pod addresses (besides its "
                f"network, gateway and broadcast ones), fewer than --max-pods {args.max_pods}; "
                f"use /{longest} or shorter")
    return None


def up(config: ClusterConfig, *, detach: bool, client_config: Path, kubeconfig: Path | None = None) -> int:
    if config.lab is not None:
        lab_validate(name=config.name, node_cidr=config.node_cidr, indexes=config.nodes)
    for d in (config.data_dir, config.pid_dir, config.log_dir):
        d.mkdir(parents=True, exist_ok=True)
    recorded = load_config(config)
    if recorded.nodes and config.nodes:
        # `skiff node add|remove` changed the set since: the recorded one stands.
        config = dataclasses.replace(config, nodes=recorded.nodes)
    wanted = components(config)
    running = {c.name: pid for c in wanted if (pid := running_pid(config, c)) is not None}
    supervisor = supervisor_pid(config)
    if running:
        same = dict(start_timeout=config.start_timeout, stop_timeout=config.stop_timeout,
                    bootstrap_busybox=config.bootstrap_busybox)
        if dataclasses.replace(recorded, **same) != config:
            raise CliError(f"part of a cluster started with other options runs from {config.data_dir}; "
                           "run `skiff down` first")
    listed = ", ".join(f"{name} pid {pid}" for name, pid in running.items())
    if len(running) == len(wanted) and supervisor is not None:
        print(f"the cluster is already running ({listed}, supervisor pid {supervisor}); `skiff down` stops it")
        return 0
    if running:
        print(f"already running: {listed}; starting what is missing")
    else:
        state_path(config).unlink(missing_ok=True)  # a new cluster: restarts count from 0
    ports = {"etcd": [("etcd", config.etcd_port), ("etcd peer", config.etcd_peer_port)],
             "controlplane": [("API", config.api_port),
                              ("control plane metrics", config.controlplane_metrics_port)],
             "agent": [("agent", config.agent_port), ("agent metrics", config.agent_metrics_port)],
             "prometheus": [("prometheus", config.prometheus_port)]}
    # A namespaced node's agent has the ports of its own namespace.
    ports.update({c.name: [] for c in wanted if c.is_agent and c.name != "agent"})
    ports["hollow-nodes"] = []   # hollow nodes serve nothing
    _check_flags(config, ports, [c for c in wanted if c.name not in running])
    hosts = {("API", config.api_port): config.api_host}
    for component in wanted:
        if component.name not in running:
            for what, port in ports[component.name]:
                host = hosts.get((what, port), "127.0.0.1")
                if port_taken(port, host=host):
                    raise CliError(f"{host}:{port} (the {what} port) is already in use by another program")

    made_lab = False
    if config.lab is not None:
        made_lab = not lab_namespaces(config.lab)
        _ensure_lab(config)
    if config.bootstrap_busybox and any(c.is_agent and c.name not in running for c in wanted):
        # Every node's store is DATA/images; with separate ones, the first node's (the others fetch it from there).
        _ensure_busybox(config, data_dir=node_data_dir(config, config.lab.node(config.nodes[0]))
                        if config.separate_image_stores and config.lab is not None and config.nodes
                        else config.data_dir)
    if config.secure:
        _ensure_pki(config)   # before any component: they read their certificates at start
    if config.monitoring and "prometheus" not in running:
        write_monitoring_config(config)   # DATA/monitoring: the config for this cluster, the rules
    # `down`, `status` and the supervisor read the options from here, so they need no flags of their own.
    save_config(config)
    cluster = Cluster(config)
    try:
        for component in wanted:
            label = f"agent (node {component.node})" if component.is_agent else component.name
            print(f"starting {label} ...", end=" ", flush=True)
            try:
                try:
                    cluster.start(component)
                except AlreadyRunning as already:  # the supervisor started it meanwhile
                    cluster.wait_healthy(component, None)
                    print(f"already running (pid {already.pid})", flush=True)
                    continue
            except CliError:
                print("failed", flush=True)
                raise
            print("ok", flush=True)
        write_context(path=client_config, name=config.name, config=_client_config(config))
        if kubeconfig is not None:   # kubectl's context `skiff`, merged into what the file holds
            server = _rest_server(config)
            write_kubeconfig(kubeconfig, server=server, credentials=config.client_credentials())
            print(f"kubectl: context skiff in {kubeconfig} (Kubernetes API at {server})")
        print(f"cluster is up: API at {config.api_address}, client config {client_config}, "
              f"logs in {config.log_dir}")
        if detach:
            if supervisor is None:
                print(f"supervisor started (pid {start_detached(config)}); `skiff status` shows the components")
            cluster.started.clear()  # they keep running; `skiff down` stops them
            return 0
        if supervisor is not None:
            print(f"the supervisor (pid {supervisor}) already watches this cluster; `skiff down` stops it")
            cluster.started.clear()
            return 0
        _supervise(cluster)
        return 0
    except BaseException:
        cluster.stop()
        if made_lab:
            _teardown_lab(config)   # this `up` made it, and a failed `up` leaves no record of it
        raise


def _ensure_lab(config: ClusterConfig) -> None:
    """The private link and the nodes' namespaces (skiff/cli/_lab.py), before
    the control plane binds the host's end of the link."""
    lab = config.lab
    print(f"creating the node network ({lab.netns}, link {lab.host_link} {lab.host_ip}) ...", end=" ", flush=True)
    try:
        ensure_lab(lab)
        for index in config.nodes:
            ensure_lab_node(lab.node(index))
            for d in (node_data_dir(config, lab.node(index)), node_run_dir(config, lab.node(index))):
                d.mkdir(parents=True, exist_ok=True)
    except CliError:
        print("failed", flush=True)
        raise
    print("ok", flush=True)


def _check_flags(config: ClusterConfig, ports: dict[str, list[tuple[str, int]]], starting: list[Component]) -> None:
    """Every flag checked before anything starts (a bad agent flag once failed only after
    etcd and the control plane were up): ports here, the agent's own flags by the agent
    itself (--check-config), so its rules stay in one place."""
    for what, port in (p for c in starting for p in ports[c.name]):
        if not 1 <= port <= 65535:
            raise CliError(f"the {what} port {port}: must be between 1 and 65535")
    for component in starting:
        if component.is_agent:
            check = subprocess.run([*component.argv, "--check-config"], capture_output=True, text=True,
                                   env=component_env(), timeout=60)
            if check.returncode != 0:
                raise CliError(check.stderr.strip().removeprefix("skiff-agent: ") or
                               f"the agent refused its flags (exit {check.returncode})")


def _ensure_busybox(config: ClusterConfig, *, data_dir: Path) -> None:
    """The offline `busybox` image the examples use, made from the host's
    busybox-static if the node's store lacks it (`skiff image bootstrap`
    only checks when it is there). A failure is reported, not fatal: pods
    naming busybox will then say ErrImageNeverPull."""
    print("preparing image busybox ...", end=" ", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "skiff.cli.main", "image", "--data-dir", str(data_dir), "bootstrap", "busybox",
         "--quiet"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=component_env())
    if result.returncode == 0:
        print("ok", flush=True)
    else:
        reason = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        print(f"failed ({reason}); pods that use busybox will not start", flush=True)


def _supervise(cluster: Cluster) -> None:
    """In the foreground: restart what exits until Ctrl-C or SIGTERM; then stop everything."""
    config = cluster.config
    stop = False

    def terminate(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    previous = {s: signal.signal(s, terminate) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        write_pid_file(config.pid_dir / "supervisor.pid", os.getpid())
        supervisor = Supervisor(config, log=lambda message: print(message, flush=True))
        for component, proc in cluster.started:
            supervisor.adopt(component, proc)
        print("running in the foreground; press Ctrl-C to stop", flush=True)
        supervisor.run(stopping=lambda: stop)
        print()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        cluster.stop(everything=True)


async def _delete_pod_controllers(client: ApiClient) -> None:
    """Delete what would make the pods again (each pod's controller, and its
    controller's: a ReplicaSet and its Deployment), so deleted pods stay deleted."""
    seen: set[tuple[str, str, str]] = set()
    frontier, _ = await client.list("Pod", "")
    while frontier:
        owners = []
        for obj in frontier:
            ref = next((r for r in obj.metadata.owner_references if r.controller), None)
            key = (ref.kind, obj.metadata.namespace, ref.name) if ref is not None else None
            if key is None or key in seen:
                continue
            seen.add(key)
            try:
                owners.append(await client.get(ref.kind, ref.name, obj.metadata.namespace))
            except (NotFound, ApiError):
                continue
        frontier = owners
    if seen:
        print(f"deleting {len(seen)} pod controller(s) ...", end=" ", flush=True)
    for kind, namespace, name in seen:
        try:
            await client.delete(kind, name, namespace, grace_period_seconds=0)
        except (NotFound, ApiError):
            pass
    if seen:
        print("ok", flush=True)


def _delete_all_pods(config: ClusterConfig, *, timeout: float, grace_period: int | None = None) -> bool:
    """Delete every pod through the API and wait until the agent has confirmed
    each (its containers stopped, mounts, cgroups and addresses freed); whether all went."""
    async def delete_all() -> None:
        async with ApiClient(config.api_address, credentials=config.client_credentials()) as client:
            # A controller is found through a pod it made, so one whose pod came
            # after the last pass (a Job a CronJob just started) is caught by the next.
            for _ in range(5):
                await _delete_pod_controllers(client)
                pods, _ = await client.list("Pod", "")
                if not pods:
                    return
                await delete_pass(client, pods)

    async def delete_pass(client: ApiClient, pods: list) -> None:
        print(f"deleting {len(pods)} pod(s) ...", end=" ", flush=True)
        for pod in pods:
            try:
                await client.delete("Pod", pod.metadata.name, pod.metadata.namespace,
                                    grace_period_seconds=grace_period)
            except NotFound:
                pass

        async def all_gone() -> None:  # the pods deleted in this pass (a new one is the next pass's)
            remaining, revision = await client.list("Pod", "")
            deleted = {p.metadata.uid for p in pods}
            left = {(p.metadata.namespace, p.metadata.name) for p in remaining if p.metadata.uid in deleted}
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
        return True
    except (ApiError, asyncio.TimeoutError) as exc:
        reason = exc.message if isinstance(exc, ApiError) else f"not all gone after {timeout:g}s"
        print(f"\nwarning: could not delete every pod ({reason}); removing what they left once the agent "
              f"is stopped", flush=True)
        return False


def _remove_leftover_pods(run_dir: Path, data_dir: Path, cgroup_parent: str) -> None:
    """With the agent stopped: the containers and sandboxes of pods that did not
    go in time (their processes, namespace mounts and cgroups) and their volumes'
    tmpfs mounts (Secrets, projected tokens, Memory emptyDirs), as the agent's own
    next start would remove them (runtime.cleanup_orphans, release_volumes).
    Also after a purge that was itself cut short: then no pod is known to be gone."""
    from agent.containers import PodPaths
    from agent.volumes import release_volumes

    pods = data_dir / "pods"
    volumes = [d for d in pods.iterdir() if d.is_dir()] if pods.is_dir() else []
    if not volumes and not ((run_dir / "pods").is_dir() and any((run_dir / "pods").iterdir())):
        return
    from agent.runtime.linux.runtime import LinuxRuntime
    print("removing the pods' leftover containers, sandboxes and volumes ...", end=" ", flush=True)
    runtime = LinuxRuntime(run_dir=run_dir, cgroup_parent=cgroup_parent)
    try:
        asyncio.run(runtime.cleanup_orphans(set()))
        for d in volumes:
            release_volumes(paths=PodPaths(root=d))
        print("ok", flush=True)
    except Exception as exc:  # noqa: BLE001 - purge goes on; the mounts check below names what is left
        print(f"\nwarning: could not remove every pod's leftovers: {exc}", flush=True)
    finally:
        runtime.close()


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
        from agent.network.serviceproxy.proxy import delete_table as delete_service_table
        delete_service_table(f"{config.nft_table}-svc")   # the service proxy's table (decision 25)
        print("ok", flush=True)
    except Exception as exc:  # noqa: BLE001 - purge goes on; the user is told what is left
        print(f"\nwarning: could not remove the node network: {exc}", flush=True)


def _teardown_lab(config: ClusterConfig) -> None:
    """Remove every node's cgroups and namespace (its link, bridge, routes and
    table go with it), then the lab namespace and the host's link; first what
    pods that did not go left on each node."""
    lab = config.lab
    names = lab_namespaces(lab)
    indexes = sorted(set(config.nodes) | {int(n.rsplit("-", 1)[1]) for n in names if n != lab.netns})
    for index in indexes:
        node = lab.node(index)
        _remove_leftover_pods(node_run_dir(config, node), node_data_dir(config, node), node.cgroup_parent)
    print(f"removing the node network ({', '.join(names) or 'nothing left'}) ...", end=" ", flush=True)
    left = []
    for index in indexes:
        left += remove_empty_cgroups(lab.node(index).cgroup_parent)
        remove_node(lab.node(index))
    remove_lab(lab)
    print("ok", flush=True)
    if left:
        print(f"warning: cgroups still in use, not removed: {', '.join(left)}", flush=True)


def down(config: ClusterConfig, *, purge: bool, pods_timeout: float = 60.0,
         grace_period: int | None = None, client_config: Path | None = None,
         kubeconfig: Path | None = None) -> int:
    config = load_config(config)  # as `up` recorded it; without a record the defaults stand
    stopped = 0
    # The supervisor first, so it does not start again what is stopped below.
    if (pid := supervisor_pid(config)) is not None:
        print(f"stopping supervisor (pid {pid}) ...", end=" ", flush=True)
        stop_pid(pid, timeout=config.stop_timeout)
        print("ok", flush=True)
        stopped += 1
    for name in ("supervisor.pid", "supervisor.json"):
        (config.pid_dir / name).unlink(missing_ok=True)
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
        if config.lab is not None:
            for index in config.nodes:
                remove_empty_cgroups(config.lab.node(index).cgroup_parent)
        elif not other_agents():
            # Pods left running keep their cgroups; with none, nothing of ours stays.
            remove_empty_cgroups(config.cgroup_parent)
        return 0
    if config.lab is not None:
        _teardown_lab(config)
    else:
        _remove_leftover_pods(config.run_dir, config.data_dir, config.cgroup_parent)
        _teardown_node(config)
    dirs = [d for d in (config.data_dir, config.run_dir) if d.exists()]
    mounts = mounts_under(dirs)
    if mounts:
        raise CliError(f"not removing {', '.join(map(str, dirs))}: still mounted there: {', '.join(mounts[:5])}")
    for d in dirs:
        shutil.rmtree(d)
        print(f"removed {d}")
    # Its context named credentials that are gone now (only if it still names this cluster's API).
    if client_config is not None and remove_context(path=client_config, name=config.name,
                                                    server=config.api_address):
        print(f"removed context {config.name} from {client_config}")
    if kubeconfig is not None:   # kubectl's context `skiff`, if `up` wrote it for this cluster
        try:
            if remove_kubeconfig(kubeconfig, server=_rest_server(config)):
                print(f"removed context skiff from {kubeconfig}")
        except (OSError, ValueError, yaml.YAMLError) as exc:   # the cluster is gone; say what stayed
            print(f"warning: context skiff left in {kubeconfig}: {exc}", file=sys.stderr)
    return 0


def _rest_server(config: ClusterConfig) -> str:
    """The Kubernetes API address `up` writes into the kubeconfig: where its control plane serves it."""
    return f"{'https' if config.secure else 'http'}://{rest_address(config.api_port)}"


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
    p.add_argument("--kubeconfig", type=Path, default=None, metavar="PATH",
                   help="the kubeconfig to add context `skiff` to (default: $KUBECONFIG or ~/.kube/config)")
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
                   help="the pod network; each node gets a /--node-cidr-mask-size of it (default %(default)s)")
    p.add_argument("--node-cidr-mask-size", type=int, default=ClusterConfig.node_cidr_mask_size, metavar="N",
                   help="the prefix length of each node's pod CIDR, cut from --cluster-cidr (the control plane's "
                        "flag, kube-controller-manager's); a /N holds 2^(32-N)-3 pods, so --max-pods above 253 "
                        "needs a shorter one, e.g. 23 for 500 (default %(default)s)")
    p.add_argument("--service-cluster-ip-range", default=ClusterConfig.service_cluster_ip_range, metavar="CIDR",
                   help="Services' cluster IPs, clear of --cluster-cidr and --node-cidr (default %(default)s)")
    p.add_argument("--service-node-port-range", default=ClusterConfig.service_node_port_range,
                   metavar="FIRST-LAST", help="Services' node ports (default %(default)s)")
    p.add_argument("--insecure", action="store_true",
                   help="no CA, no TLS, no authentication: anyone who reaches the API, the agents' service or "
                        "etcd may do anything (the default is secure: a cluster CA in DATA/pki, TLS on the API, "
                        "etcd and the agents' service, client certificates - the admin's in the client config and "
                        "--kubeconfig -, every request authorized; decisions 32, 34)")
    p.add_argument("--secure", action="store_true", help=argparse.SUPPRESS)   # the default now; kept for old scripts
    p.add_argument("--nodes", type=int, default=None, metavar="N",
                   help="run N nodes, each in a network namespace of its own acting as a separate host, on a "
                        "private link (without it: one node on this host)")
    p.add_argument("--name", default=ClusterConfig.name, metavar="NAME",
                   help="with --nodes: the prefix of the nodes' names and of every namespace, link, bridge, "
                        "nftables table and cgroup they get (default %(default)s; starts with 'skiff', at most 9)")
    p.add_argument("--node-cidr", default=ClusterConfig.node_cidr, metavar="CIDR",
                   help="with --nodes: the private link's subnet; .1 is this host, .I+1 node I (default %(default)s)")
    p.add_argument("--pod-network", default=ClusterConfig.pod_network, choices=("host-gw", "vxlan"),
                   help="with --nodes: how pods reach other nodes' pods: host-gw (routes via the node IPs) or "
                        "vxlan (a VXLAN tunnel between the nodes) (default %(default)s)")
    p.add_argument("--separate-image-stores", action="store_true",
                   help="with --nodes: each node gets an image store of its own (DATA/nodes/NODE/images), as "
                        "separate machines have, instead of sharing DATA/images; a node fetches what it lacks "
                        "from its peers (decision 33)")
    p.add_argument("--pod-egress", default=ClusterConfig.pod_egress, choices=("nat", "none"),
                   help="pods reaching addresses outside the cluster: nat (source NAT to their node's address, "
                        "as Kubernetes and Docker; forwarding on the pod bridge and the node's uplink only) or "
                        "none (fenced in) (default %(default)s)")
    p.add_argument("--monitoring", action="store_true",
                   help="also run Debian's prometheus on loopback with Skiff's config, recording rules and alerts "
                        "(deploy/monitoring; targets from the control plane's http_sd lists); data in DIR/monitoring")
    p.add_argument("--prometheus-port", type=int, default=ClusterConfig.prometheus_port, metavar="PORT",
                   help="with --monitoring: Prometheus' port on 127.0.0.1 (default %(default)s)")
    p.add_argument("--monitoring-rule-for-scale", type=float, default=ClusterConfig.monitoring_rule_for_scale,
                   metavar="FACTOR",
                   help="with --monitoring: multiply every alert's `for:` duration by FACTOR (0 < FACTOR <= 1) in "
                        "the rules Prometheus loads, e.g. 0.02 makes a 15m alert fire after 18s to try alerts "
                        "end to end; the shipped rule files are unchanged (default %(default)s)")
    p.add_argument("--eviction-hard", default="", metavar="SIGNAL<QUANTITY,...",
                   help="the agents' hard eviction thresholds, as kubelet's --eviction-hard (e.g. "
                        "'memory.available<500Mi,nodefs.available<15%%'; default: the agent's own)")
    p.add_argument("--max-pods", type=int, default=ClusterConfig.max_pods, metavar="N",
                   help="every node's pod capacity, hollow ones included: the Node's capacity and allocatable "
                        "pods, which the scheduler honours (kubelet's --max-pods; default %(default)s)")
    p.add_argument("--hollow-nodes", type=int, default=0, metavar="N",
                   help="also run N hollow nodes (hollow-node-0 ..): node agents with an in-memory runtime, no "
                        "containers, all in one process (kubemark's idea; agent/hollow.py); with many, raise "
                        "--start-timeout")
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
    d.add_argument("--kubeconfig", type=Path, default=None, metavar="PATH",
                   help="with --purge: the kubeconfig to remove context `skiff` from, if it names this "
                        "cluster (default: $KUBECONFIG or ~/.kube/config)")
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
                     cgroup_parent=args.cgroup_parent, cluster_cidr=args.cluster_cidr,
                     monitoring=args.monitoring, prometheus_port=args.prometheus_port,
                     monitoring_rule_for_scale=args.monitoring_rule_for_scale,
                     nodes=tuple(range(1, (args.nodes or 0) + 1)), name=args.name, node_cidr=args.node_cidr,
                     pod_network=args.pod_network, pod_egress=args.pod_egress, eviction_hard=args.eviction_hard,
                     hollow_nodes=args.hollow_nodes, max_pods=args.max_pods,
                     node_cidr_mask_size=args.node_cidr_mask_size,
                     service_cluster_ip_range=args.service_cluster_ip_range,
                     service_node_port_range=args.service_node_port_range,
                     separate_image_stores=args.separate_image_stores)
        if args.secure and args.insecure:
            raise CliError("--secure and --insecure: pick one (secure is the default)")
        extra = dict(extra, secure=not args.insecure)
        if problem := _service_range_problem(args):
            raise CliError(problem)
        if args.max_pods < 1:
            raise CliError(f"--max-pods: must be at least 1, got {args.max_pods}")
        if args.hollow_nodes < 0:
            raise CliError(f"--hollow-nodes: must not be negative, got {args.hollow_nodes}")
        if problem := _node_cidr_mask_problem(args):
            raise CliError(problem)
        if not 0 < args.monitoring_rule_for_scale <= 1:
            raise CliError(f"--monitoring-rule-for-scale: must be > 0 and <= 1, got {args.monitoring_rule_for_scale}")
        if args.nodes is not None and args.nodes < 1:
            raise CliError(f"--nodes: must be at least 1, got {args.nodes}")
        if args.separate_image_stores and not args.nodes:
            raise CliError("--separate-image-stores: only with --nodes N (the one node on the host has one store)")
    else:
        extra = dict(node_name="")
    return ClusterConfig(data_dir=args.data_dir.absolute(), run_dir=args.run_dir.absolute(),
                         stop_timeout=args.stop_timeout, **extra)


def run_up(args: argparse.Namespace) -> int:
    return up(_config(args), detach=args.detach, client_config=config_path(),
              kubeconfig=args.kubeconfig or default_kubeconfig())


def run_down(args: argparse.Namespace) -> int:
    return down(_config(args), purge=args.purge, pods_timeout=args.pods_timeout,
                grace_period=args.grace_period, client_config=config_path(),
                kubeconfig=args.kubeconfig or default_kubeconfig())
