"""`skiff node add|remove`: grow and shrink a cluster started with `skiff up --nodes N`.

add: the next free index I gets a namespace on the private link
(skiff/cli/_lab.py), a data and run dir, the busybox image, and an agent
started as `up` starts one; the node is recorded in DATA/run/cluster.json
(after its agent runs, so the supervisor never counts a new node as a
restart) and `add` returns once it is Ready.

remove: as kubectl drain then delete: the Node is marked unschedulable, its
pods are deleted through the API (its agent stops their containers and frees
what they held), the node is dropped from the record (the supervisor stops
watching it), its agent stopped, the Node object deleted (every other agent
then removes its route), and its cgroups, namespace and directories removed.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import time
from pathlib import Path

from skiff.cli._cluster import (AlreadyRunning, ClusterConfig, healthy, load_config, node_agent, node_data_dir,
                                node_run_dir, running_pid, save_config, start_component)
from skiff.cli._common import CliError
from skiff.cli._lab import ensure_node, remove_node, validate
from skiff.cli._processes import last_log_line, mounts_under, remove_empty_cgroups, stop_pid
from skiff.client import ApiClient, ApiError, NotFound


def _cluster(data_dir: Path) -> ClusterConfig:
    base = ClusterConfig(data_dir=data_dir.absolute(), run_dir=Path("/run/skiff"), node_name="")
    config = load_config(base)
    if config is base or config.lab is None:
        raise CliError(f"no cluster started with `skiff up --nodes N` is recorded in {base.pid_dir}")
    return config


def add(config: ClusterConfig) -> int:
    index = min(set(range(1, max(config.nodes) + 2)) - set(config.nodes))
    validate(name=config.name, node_cidr=config.node_cidr, indexes=(index,))
    node = config.lab.node(index)
    grown = dataclasses.replace(config, nodes=(*config.nodes, index))
    component = node_agent(grown, node)
    ensure_node(node)
    for d in (node_data_dir(config, node), node_run_dir(config, node)):
        d.mkdir(parents=True, exist_ok=True)
    if config.secure:   # its certificate (system:node:NAME, its link address), from the cluster CA
        from skiff.pki import CertificateAuthority
        config.pki.ensure_node(CertificateAuthority.load(config.pki.directory), node.name, address=node.ip)
    if config.bootstrap_busybox:
        from skiff.cli.up import _ensure_busybox
        _ensure_busybox(config, data_dir=config.data_dir)   # the nodes' shared store
    print(f"adding node {node.name} ({node.ip}) ...", end=" ", flush=True)
    try:
        proc = start_component(config, component)
    except AlreadyRunning:
        proc = None
    except OSError as exc:
        raise CliError(f"cannot run the agent of {node.name}: {exc.strerror or exc}") from None
    save_config(grown)
    deadline = time.monotonic() + config.start_timeout
    log = config.log_dir / f"{component.name}.log"
    while not healthy(grown, component):
        if proc is not None and proc.poll() is not None:
            raise CliError(f"the agent of {node.name} exited at start: {last_log_line(log)}; full log: {log}")
        if time.monotonic() > deadline:
            raise CliError(f"{node.name} did not report Ready within {config.start_timeout:g}s; see {log}")
        time.sleep(0.2)
    print("Ready", flush=True)
    return 0


async def _drain(config: ClusterConfig, node_name: str, *, timeout: float, grace_period: int | None) -> None:
    async with ApiClient(config.api_address, credentials=config.client_credentials()) as client:
        try:
            node = await client.get("Node", node_name, "")
        except NotFound:
            return
        if not node.spec.unschedulable:
            node.spec.unschedulable = True
            await client.update(node)
        pods, _ = await client.list("Pod", "")
        mine = [p for p in pods if p.spec.node_name == node_name]
        for pod in mine:
            try:
                await client.delete("Pod", pod.metadata.name, pod.metadata.namespace,
                                    grace_period_seconds=grace_period)
            except NotFound:
                pass
        deadline = time.monotonic() + timeout
        while mine and time.monotonic() < deadline:
            pods, _ = await client.list("Pod", "")
            uids = {p.metadata.uid for p in pods}
            mine = [p for p in mine if p.metadata.uid in uids]
            await asyncio.sleep(0.5)
        if mine:
            print(f"\nwarning: {len(mine)} pod(s) of {node_name} still there after {timeout:g}s", flush=True)


async def _delete_node(config: ClusterConfig, node_name: str) -> None:
    async with ApiClient(config.api_address, credentials=config.client_credentials()) as client:
        try:
            await client.delete("Node", node_name, "")
        except NotFound:
            pass


def remove(config: ClusterConfig, node_name: str, *, pods_timeout: float, grace_period: int | None = None) -> int:
    lab = config.lab
    index = next((i for i in config.nodes if lab.node(i).name == node_name), None)
    if index is None:
        known = ", ".join(lab.node(i).name for i in config.nodes)
        raise CliError(f"no node {node_name!r} in this cluster (its nodes: {known})")
    if len(config.nodes) == 1:
        raise CliError(f"{node_name} is the cluster's last node; `skiff down --purge` removes the cluster")
    node = lab.node(index)
    component = node_agent(config, node)
    print(f"draining node {node_name} ...", end=" ", flush=True)
    try:
        asyncio.run(_drain(config, node_name, timeout=pods_timeout, grace_period=grace_period))
    except ApiError as exc:
        raise CliError(f"cannot drain {node_name}: {exc.message}") from None
    print("ok", flush=True)
    save_config(dataclasses.replace(config, nodes=tuple(i for i in config.nodes if i != index)))
    if (pid := running_pid(config, component)) is not None:
        print(f"stopping agent-{node_name} (pid {pid}) ...", end=" ", flush=True)
        stop_pid(pid, timeout=config.stop_timeout)
        print("ok", flush=True)
    (config.pid_dir / f"{component.name}.pid").unlink(missing_ok=True)
    asyncio.run(_delete_node(config, node_name))
    print(f"node {node_name} deleted", flush=True)
    left = remove_empty_cgroups(node.cgroup_parent)
    if left:
        print(f"warning: cgroups still in use, not removed: {', '.join(left)}", flush=True)
    remove_node(node)
    dirs = [d for d in (node_data_dir(config, node), node_run_dir(config, node)) if d.exists()]
    mounts = mounts_under(dirs)
    if mounts:
        raise CliError(f"not removing {', '.join(map(str, dirs))}: still mounted there: {', '.join(mounts[:5])}")
    for d in dirs:
        shutil.rmtree(d)
    print(f"removed the namespace {node.netns} and {', '.join(map(str, dirs))}", flush=True)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("node", help="add or remove a node of a `skiff up --nodes N` cluster")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    a = verbs.add_parser("add", help="add a node (a new network namespace and agent); returns once it is Ready")
    r = verbs.add_parser("remove", help="drain a node, stop its agent, delete it and remove its namespace")
    r.add_argument("name", metavar="NODE")
    r.add_argument("--pods-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for the node's pods to be gone")
    r.add_argument("--grace-period", type=int, default=None, metavar="SECONDS",
                   help="the drained pods' termination grace period (default: each pod's own)")
    for q in (a, r):
        q.add_argument("--data-dir", type=Path, default=Path("/var/lib/skiff"), metavar="DIR",
                       help="the cluster's data dir, as given to `skiff up` (default /var/lib/skiff)")
    a.set_defaults(func=lambda args: add(_cluster(args.data_dir)))
    r.set_defaults(func=lambda args: remove(_cluster(args.data_dir), args.name, pods_timeout=args.pods_timeout,
                                                    grace_period=args.grace_period))
