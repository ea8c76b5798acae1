"""`skiff top nodes|pods [--containers]`: CPU and memory in use, as kubectl top.

    skiff top nodes
    NAME     CPU(cores)   CPU%   MEMORY(bytes)   MEMORY%
    node-1   312m         7%     2048Mi          26%

    skiff top pods -A --containers
    NAMESPACE   POD   NAME   CPU(cores)   MEMORY(bytes)

The numbers come from the agents' stats (the cgroups of each container, and
the host's /proc for the node) through the control plane's Stats call, the
same path `skiff logs` takes: the CLI never reaches a node itself. Memory is
the working set, as metrics-server reports it; CPU is a rate, so each node
is asked twice, --window seconds apart (metrics-server averages over its
scrape interval; 1 s by default here, so the answer is about now). CPU% and
MEMORY% are of the node's allocatable, as kubectl computes them.
"""
from __future__ import annotations

import argparse
import asyncio
import time

from google.protobuf.message import Message

from skiff.api.selectors import SelectorError, parse_label_selector
from skiff.api.quantity import cpu_millis, memory_bytes
from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of
from skiff.cli._objects import aligned
from skiff.client import ApiClient, ApiError

MiB = 1 << 20


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "top", help="show CPU and memory in use by nodes or pods",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Show the CPU (millicores) and memory (working set, Mi) nodes or pods use, as kubectl top.",
        epilog="examples:\n  skiff top nodes\n  skiff top pods -A\n  skiff top pod web --containers")
    p.add_argument("resource", choices=("nodes", "node", "no", "pods", "pod", "po"), metavar="nodes|pods")
    p.add_argument("name", nargs="?", help="one node or pod")
    p.add_argument("-l", "--selector", default="", metavar="SELECTOR", help="label selector to filter on")
    p.add_argument("--containers", action="store_true", help="pods: a line per container")
    p.add_argument("--sort-by", choices=("cpu", "memory"), help="sort by CPU or memory, largest first")
    p.add_argument("--no-headers", action="store_true", help="leave out the header line")
    p.add_argument("--window", type=float, default=1.0, metavar="SECONDS",
                   help="CPU is measured over this many seconds (default %(default)g)")
    add_namespace_flags(p, all_namespaces=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.window <= 0:
        raise CliError(f"--window {args.window:g}: must be more than 0")
    try:
        selector = parse_label_selector(args.selector) if args.selector else None
    except SelectorError as exc:
        raise CliError(f"-l {args.selector!r}: {exc}") from None
    if args.resource in ("nodes", "node", "no"):
        return call_api(args, lambda client: _top_nodes(client, args, selector))
    return call_api(args, lambda client: _top_pods(client, args, selector))


async def _usage(client: ApiClient, node_names: list[str], window: float) -> dict[str, tuple[Message, Message, float]]:
    """Two stats of each node, `window` apart: node -> (first, second, seconds between).
    A node whose agent does not answer is left out."""
    async def one(name: str) -> Message | None:
        try:
            return await client.stats(name, timeout=10)
        except ApiError:
            return None

    async def sample() -> tuple[list[Message | None], float]:
        started = time.monotonic()
        return list(await asyncio.gather(*(one(n) for n in node_names))), started

    first, t0 = await sample()
    await asyncio.sleep(window)
    second, t1 = await sample()
    return {n: (a, b, max(t1 - t0, 1e-3)) for n, a, b in zip(node_names, first, second)
            if a is not None and b is not None}


def _millicores(before: float, after: float, seconds: float) -> int:
    return max(0, round((after - before) / seconds * 1000))


def _mi(n: int) -> str:
    return f"{n // MiB}Mi"


def _table(header: list[str], rows: list[list[str]], *, no_headers: bool) -> str:
    return aligned(rows if no_headers else [header, *rows])


async def _top_nodes(client: ApiClient, args: argparse.Namespace, selector) -> int:
    nodes, _ = await client.list("Node", "")
    if args.name:
        nodes = [n for n in nodes if n.metadata.name == args.name]
        if not nodes:
            raise CliError(f'Error from server (NotFound): nodes "{args.name}" not found')
    if selector is not None:
        nodes = [n for n in nodes if selector.matches(n.metadata.labels)]
    if not nodes:
        raise CliError("No resources found")
    usage = await _usage(client, [n.metadata.name for n in nodes], args.window)
    rows = []
    for node in sorted(nodes, key=lambda n: n.metadata.name):
        name = node.metadata.name
        if name not in usage:
            rows.append((0, 0, [name, "<unknown>", "<unknown>", "<unknown>", "<unknown>"]))
            continue
        a, b, seconds = usage[name]
        cpu = _millicores(a.cpu_usage_seconds, b.cpu_usage_seconds, seconds)
        mem = b.memory_working_set_bytes
        alloc = node.status.allocatable
        cpu_pct = f"{cpu * 100 // cpu_millis(alloc['cpu'])}%" if alloc.get("cpu") else "<unknown>"
        mem_pct = f"{mem * 100 // memory_bytes(alloc['memory'])}%" if alloc.get("memory") else "<unknown>"
        rows.append((cpu, mem, [name, f"{cpu}m", cpu_pct, _mi(mem), mem_pct]))
    if args.sort_by:
        rows.sort(key=lambda r: r[0] if args.sort_by == "cpu" else r[1], reverse=True)
    print(_table(["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"], [r[2] for r in rows],
                 no_headers=args.no_headers), end="")
    return 0


async def _top_pods(client: ApiClient, args: argparse.Namespace, selector) -> int:
    all_ns = getattr(args, "all_namespaces", False)
    namespace = "" if all_ns else namespace_of(args)
    pods, _ = await client.list("Pod", namespace)
    if args.name:
        pods = [p for p in pods if p.metadata.name == args.name]
        if not pods:
            raise CliError(f'Error from server (NotFound): pods "{args.name}" not found')
    if selector is not None:
        pods = [p for p in pods if selector.matches(p.metadata.labels)]
    running = [p for p in pods if p.spec.node_name and p.status.phase == "Running"]
    if not running:
        if args.name:
            raise CliError(f'Metrics not available for pod {namespace}/{args.name}')
        raise CliError("No resources found" + ("" if all_ns else f" in {namespace} namespace") + ".")
    usage = await _usage(client, sorted({p.spec.node_name for p in running}), args.window)
    containers: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
    for node_name, (a, b, seconds) in usage.items():
        before = {(c.namespace, c.pod, c.container): c.cpu_usage_seconds for c in a.containers}
        for c in b.containers:
            key = (c.namespace, c.pod, c.container)
            cpu = _millicores(before[key], c.cpu_usage_seconds, seconds) if key in before else 0
            containers.setdefault((c.namespace, c.pod), []).append((c.container, cpu, c.memory_working_set_bytes))
    wanted = {(p.metadata.namespace, p.metadata.name) for p in running}
    found = {k: v for k, v in containers.items() if k in wanted}
    if not found:
        raise CliError("metrics not available yet")
    rows = []
    for (ns, pod), cs in sorted(found.items()):
        lead = [ns] if all_ns else []
        if args.containers:
            for name, cpu, mem in sorted(cs):
                rows.append((cpu, mem, [*lead, pod, name, f"{cpu}m", _mi(mem)]))
        else:
            cpu, mem = sum(c[1] for c in cs), sum(c[2] for c in cs)
            rows.append((cpu, mem, [*lead, pod, f"{cpu}m", _mi(mem)]))
    if args.sort_by:
        rows.sort(key=lambda r: r[0] if args.sort_by == "cpu" else r[1], reverse=True)
    header = (["NAMESPACE"] if all_ns else []) + (["POD", "NAME"] if args.containers else ["NAME"]) + [
        "CPU(cores)", "MEMORY(bytes)"]
    print(_table(header, [r[2] for r in rows], no_headers=args.no_headers), end="")
    return 0
