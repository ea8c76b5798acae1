"""`skiff scale deployment/NAME --replicas N` (also replicasets), as kubectl.

    skiff scale deploy/web --replicas 5              deployment/web scaled
    skiff scale rs web --replicas 0 --current-replicas 2

The object is read and written back with its resourceVersion; --current-replicas
is kubectl's precondition (refused if the object has another size).
"""
from __future__ import annotations

import argparse
import sys

from google.protobuf.message import Message

from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of
from skiff.cli._objects import change, intermixed, not_found, object_label, parse_resources
from skiff.client import ApiClient, NotFound

SCALABLE = ("Deployment", "ReplicaSet")
_NOT_SERVED = {"statefulset", "statefulsets", "sts", "replicationcontroller", "replicationcontrollers", "rc"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = intermixed(subparsers.add_parser(
        "scale", help="set a new size for a deployment or replica set",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Set a new size for a deployment or replica set.",
        epilog="examples:\n  skiff scale deployment/web --replicas 3\n  skiff scale rs frontend --replicas 0"))
    p.add_argument("resource", metavar="TYPE/NAME|TYPE NAME", nargs="+")
    p.add_argument("--replicas", type=int, required=True, metavar="N", help="the new number of replicas")
    p.add_argument("--current-replicas", type=int, default=-1, metavar="N",
                   help="only if the current size is N (a precondition)")
    add_namespace_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.replicas < 0:
        raise CliError("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    words = args.resource
    type_ = words[0].partition("/")[0] if "/" in words[0] else words[0]
    if type_.lower() in _NOT_SERVED:
        raise CliError(f"cannot scale {type_}: Skiff has no such kind; deployments and replicasets can be scaled")
    targets = [(r.kind, name) for r in parse_resources(words) for name in r.names]
    if not targets:
        raise CliError("one or more resources must be specified as <resource> <name> or <resource>/<name>")
    for kind, _ in targets:
        if kind.name not in SCALABLE:
            raise CliError(f"cannot scale {kind.resource}: only deployments and replicasets can be scaled")
    namespace = namespace_of(args)

    async def body(client: ApiClient) -> int:
        code = 0
        for kind, name in targets:
            def resize(live: Message) -> Message:
                if args.current_replicas >= 0 and live.spec.replicas != args.current_replicas:
                    raise CliError(f"Expected replicas to be {args.current_replicas}, was {live.spec.replicas}")
                live.spec.replicas = args.replicas
                return live
            try:
                obj, _ = await change(client, kind, namespace, name, resize)
            except NotFound:
                print(not_found(kind, name), file=sys.stderr)
                code = 1
                continue
            print(f"{object_label(obj)} scaled")
        return code
    return call_api(args, body)
