"""`skiff get pods|nodes|events [NAME]`: list or show objects, kubectl-like.

Tables come from skiff.api.printers; `-o json|yaml` print a Kubernetes List
(or the one object when NAME is given); `-w` keeps printing rows as the
objects change, from a watch that starts at the revision the list was read at,
so no change between the two is missed.
"""
from __future__ import annotations

import argparse
import sys

from google.protobuf.message import Message

from skiff.api import printers
from skiff.cli._common import add_namespace_flags, call_api, kind_arg, namespace_of, scope
from skiff.client import ApiClient

OUTPUTS = ("wide", "yaml", "json", "name")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "get", help="list objects or show one",
        description="List pods, nodes or events, or show one by NAME. Tables as kubectl prints them; "
                    "-o json/yaml print a Kubernetes-style List (items[].metadata, items[].status ...).")
    p.add_argument("resource", metavar="RESOURCE", help="pods (po), nodes (no), events (ev)")
    p.add_argument("name", metavar="NAME", nargs="?", help="show only this object")
    add_namespace_flags(p, all_namespaces=True)
    p.add_argument("-l", "--selector", default="", metavar="SELECTOR",
                   help="label selector, e.g. app=web,tier!=db")
    p.add_argument("-o", "--output", choices=OUTPUTS, metavar="FORMAT",
                   help="wide (more columns), yaml, json or name")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, print changes as they happen")
    p.add_argument("--no-headers", action="store_true", help="tables without the header line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kind = kind_arg(args.resource)
    namespace = "" if args.all_namespaces else scope(kind, namespace_of(args))

    def render(objs: list[Message], *, headers: bool, single: bool) -> str:
        if args.output == "name":
            return "".join(printers.name_of(o) + "\n" for o in objs)
        if args.output in ("json", "yaml"):
            dump = printers.dump_json if args.output == "json" else printers.dump_yaml
            if single:
                return dump(printers.to_dict(objs[0]))
            return dump(printers.to_list_dict(objs))
        return printers.table(objs, kind=kind, wide=args.output == "wide",
                              with_namespace=args.all_namespaces, headers=headers and not args.no_headers)

    async def get(client: ApiClient) -> int:
        if args.name:
            # Get (not a filtered List) so a missing object is NOT_FOUND, as kubectl reports it.
            objs = [await client.get(kind.name, args.name, scope(kind, namespace_of(args)))]
            _, revision = await client.list(kind.name, namespace, args.selector) if args.watch else ([], "")
        else:
            objs, revision = await client.list(kind.name, namespace, args.selector)
            if kind.name == "Event":  # oldest first, so the latest is nearest the prompt
                objs.sort(key=lambda e: printers.event_time_key(e))
        if objs or args.output in ("json", "yaml"):
            sys.stdout.write(render(objs, headers=True, single=bool(args.name)))
        elif not args.watch:
            where = f" in {namespace} namespace" if namespace else ""
            print(f"No resources found{where}.", file=sys.stderr)
        sys.stdout.flush()
        if not args.watch:
            return 0
        headers = not objs
        async for _type, obj, _rv in client.watch(kind.name, namespace, args.selector,
                                                  resource_version=revision):
            if obj is None or (args.name and obj.metadata.name != args.name):
                continue
            # Watched objects print one by one, as `kubectl get -w -o json` does.
            sys.stdout.write(render([obj], headers=headers, single=True))
            sys.stdout.flush()
            headers = False
        return 0

    return call_api(args, get)
