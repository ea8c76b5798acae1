"""`skiff describe RESOURCE NAME`: one object in prose, kubectl-like, with its events.

Generic: the text is the kind's (`Strategy.describe`, skiff/api/kinds/). This
module fetches what that needs: the object, the events whose involvedObject is
it (filtered here, so it works whatever field selectors the server supports)
and the lists the strategy asks for (`describe_related`: a node's pods).
Without NAME, every object of the kind in the namespace (or with
-A, everywhere) is described, as kubectl does.
"""
from __future__ import annotations

import argparse
from datetime import datetime, timezone

from google.protobuf.message import Message

from skiff.api import kinds
from skiff.cli._common import add_namespace_flags, call_api, kind_arg, namespace_of, scope
from skiff.client import ApiClient


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "describe", help="show objects in detail, with their events",
        description="Show an object in detail (a pod: containers with state, exit code, limits, "
                    "conditions; a node: conditions, capacity, its pods; a secret: its keys and sizes, "
                    "never the values), followed by the events about it.")
    p.add_argument("resource", metavar="RESOURCE", help="pod, node, namespace, configmap, secret, ...")
    p.add_argument("name", metavar="NAME", nargs="?", help="the object (default: every object of RESOURCE)")
    add_namespace_flags(p, all_namespaces=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kind = kind_arg(args.resource)
    namespace = "" if getattr(args, "all_namespaces", False) else scope(kind, namespace_of(args))

    async def describe(client: ApiClient) -> int:
        if args.name:
            objs = [await client.get(kind.name, args.name, scope(kind, namespace_of(args)))]
        else:
            objs, _ = await client.list(kind.name, namespace)
        events, _ = await client.list("Event", namespace if kind.namespaced else "")
        now = datetime.now(timezone.utc)
        texts = [await describe_one(client, kind, obj, events=events, now=now) for obj in objs]
        print("\n\n".join(t.rstrip("\n") for t in texts), end="\n" if texts else "")
        return 0

    return call_api(args, describe)


async def describe_one(client: ApiClient, kind: kinds.Kind, obj: Message, *,
                       events: list[Message], now: datetime) -> str:
    name, ns = obj.metadata.name, obj.metadata.namespace
    about = [e for e in events if e.involved_object.kind == kind.name and e.involved_object.name == name
             and (not kind.namespaced or e.involved_object.namespace in ("", ns))]
    related: dict[str, list[Message]] = {}
    for kind_name, (namespace, field_selector) in kind.strategy.describe_related(obj).items():
        related[kind_name], _ = await client.list(kind_name, namespace, field_selector=field_selector)
    return kind.strategy.describe(obj, kinds.DescribeContext(events=about, now=now, related=related))
