"""`skiff taint nodes`, `skiff cordon`, `skiff uncordon`: kubectl's syntax and messages.

    skiff taint nodes n1 dedicated=db:NoSchedule     node/n1 tainted
    skiff taint nodes n1 dedicated:NoSchedule-       node/n1 untainted
    skiff taint nodes n1 dedicated-                  node/n1 untainted (every effect)
    skiff cordon n1                                  node/n1 cordoned
    skiff uncordon n1                                node/n1 uncordoned

A taint that exists with the same key and effect but another value needs
--overwrite (kubectl's rule). Each node is changed by compare-and-swap
(skiff.cli._objects.change), so a concurrent writer (the node-lifecycle
controller's own taints) is never overwritten.
"""
from __future__ import annotations

import argparse
import sys

from proto.skiff.v1 import types_pb2
from skiff.api import kinds, meta
from skiff.cli._common import CliError, call_api
from skiff.cli._objects import change, intermixed
from skiff.client import ApiClient, NotFound

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = intermixed(subparsers.add_parser(
        "taint", help="update the taints on nodes", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Add (KEY[=VALUE]:EFFECT) or remove (KEY[:EFFECT]-) taints of nodes.",
        epilog="examples:\n  skiff taint nodes n1 dedicated=db:NoSchedule\n  skiff taint nodes n1 dedicated-"))
    p.add_argument("words", metavar="nodes NAME ... KEY[=VALUE]:EFFECT ... KEY[:EFFECT]-", nargs="+")
    p.add_argument("--overwrite", action="store_true", help="allow replacing a taint's value")
    p.set_defaults(func=run_taint)
    for command, on in (("cordon", True), ("uncordon", False)):
        c = subparsers.add_parser(command, help=f"mark nodes as {'un' if on else ''}schedulable")
        c.add_argument("nodes", metavar="NAME", nargs="+")
        c.set_defaults(func=run_cordon, unschedulable=on, command=command)


def parse_taints(specs: list[str]) -> tuple[list[types_pb2.Taint], list[tuple[str, str]]]:
    """`k=v:E` to add, `k:E-` / `k-` to remove (effect "" = every effect)."""
    adds, removes = [], []
    for spec in specs:
        if spec.endswith("-"):
            key, _, effect = spec[:-1].partition(":")
            if not key or (effect and effect not in EFFECTS):
                raise CliError(f"invalid taint spec: {spec}")
            removes.append((key, effect))
            continue
        body, _, effect = spec.rpartition(":")
        key, _, value = body.partition("=")
        if not body or not key:
            raise CliError(f"invalid taint spec: {spec}")
        if effect not in EFFECTS:
            raise CliError(f"invalid taint spec: {spec}, unsupported taint effect")
        adds.append(types_pb2.Taint(key=key, value=value, effect=effect))
    both = {(t.key, t.effect) for t in adds} & {r for r in removes}
    if both:
        raise CliError("can not both modify and remove the following taint(s) in the same command: "
                       + ", ".join(f"{k}:{e}" for k, e in sorted(both)))
    return adds, removes


def apply_taints(node: types_pb2.Node, adds: list[types_pb2.Taint], removes: list[tuple[str, str]], *,
                 overwrite: bool, now: float | None = None) -> str:
    """Change node.spec.taints in place; kubectl's verb: tainted, untainted or modified."""
    taints = list(node.spec.taints)
    for key, effect in removes:
        kept = [t for t in taints if not (t.key == key and effect in ("", t.effect))]
        if len(kept) == len(taints):
            raise CliError(f'taint "{key}{":" + effect if effect else ""}" not found')
        taints = kept
    modified = False
    for add in adds:
        same = [t for t in taints if t.key == add.key and t.effect == add.effect]
        if same and not overwrite and same[0].value != add.value:
            raise CliError(f"node {node.metadata.name} already has {add.key} taint(s) with same effect(s) "
                           "and --overwrite is false")
        if same:
            modified = modified or same[0].value != add.value
            taints = [t for t in taints if t not in same]
        new = types_pb2.Taint()
        new.CopyFrom(add)
        if add.effect == "NoExecute":
            new.time_added.CopyFrom(meta.timestamp(now))
        taints.append(new)
    del node.spec.taints[:]
    node.spec.taints.extend(taints)
    return "modified" if modified or (adds and removes) else "untainted" if removes else "tainted"


def run_taint(args: argparse.Namespace) -> int:
    words = args.words
    if not words or words[0] not in ("node", "nodes", "no") and not words[0].startswith(("node/", "nodes/")):
        raise CliError("taint applies only to nodes: skiff taint nodes NAME KEY[=VALUE]:EFFECT")
    if "/" in words[0]:
        names, rest = [words[0].partition("/")[2]], words[1:]
    else:
        at = next((i for i, w in enumerate(words[1:], 1) if ":" in w or w.endswith("-")), len(words))
        names, rest = words[1:at], words[at:]
    if not names:
        raise CliError("at least one node name is required")
    if not rest:
        raise CliError("at least one taint update is required")
    adds, removes = parse_taints(rest)
    node_kind = kinds.kind_named("Node")

    async def update(client: ApiClient) -> int:
        failed = False
        for name in names:
            verb = []

            def mutate(node):
                verb[:] = [apply_taints(node, adds, removes, overwrite=args.overwrite)]
                return node
            try:
                await change(client, node_kind, "", name, mutate)
            except NotFound:
                print(f'Error from server (NotFound): nodes "{name}" not found', file=sys.stderr)
                failed = True
                continue
            print(f"node/{name} {verb[0]}", flush=True)
        return 1 if failed else 0

    return call_api(args, update)


def run_cordon(args: argparse.Namespace) -> int:
    node_kind = kinds.kind_named("Node")

    async def update(client: ApiClient) -> int:
        failed = False
        for name in args.nodes:
            def mutate(node):
                node.spec.unschedulable = args.unschedulable
                return node
            try:
                _, changed = await change(client, node_kind, "", name, mutate)
            except NotFound:
                print(f'Error from server (NotFound): nodes "{name}" not found', file=sys.stderr)
                failed = True
                continue
            done = f"{args.command}ed"
            print(f"node/{name} {done}" if changed else f"node/{name} already {done}", flush=True)
        return 1 if failed else 0

    return call_api(args, update)
