"""`skiff get TYPE[,TYPE...] [NAME...]` or `skiff get TYPE/NAME...`: list or
show objects, kubectl-like.

Tables come from skiff.api.printers, the other -o formats from
skiff.cli._objects; `-o json|yaml` print a Kubernetes List (or the one object
when one NAME is given); `-w` keeps printing rows as the
objects change, from a watch that starts at the revision the list was read at,
so no change between the two is missed.
"""
from __future__ import annotations

import argparse
import sys

from google.protobuf.message import Message

from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of, scope
from skiff.cli._objects import intermixed, not_found, parse_output, parse_resources, render
from skiff.client import ApiClient, NotFound

def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "get", help="list objects or show one",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="List objects of one or several kinds, or show some by NAME. Tables as kubectl prints "
                    "them; -o json/yaml print a Kubernetes-style List (the object itself for one NAME).",
        epilog="examples:\n"
               "  skiff get pods                          skiff get pods,nodes\n"
               "  skiff get pod web -o yaml               skiff get pod/web node/n1\n"
               "  skiff get pods -l app=web --show-labels skiff get pods --field-selector spec.nodeName=n1\n"
               "  skiff get pods -o jsonpath='{range .items[*]}{.metadata.name}{\"\\n\"}{end}'\n"
               "  skiff get pods -o custom-columns=NAME:.metadata.name,NODE:.spec.nodeName\n"
               "  skiff get nodes -w")
    p.add_argument("resources", metavar="TYPE[,TYPE...] [NAME...] | TYPE/NAME...", nargs="*",
                   help="what to get: pods (po), nodes (no), events (ev), ... (see skiff api-resources)")
    add_namespace_flags(p, all_namespaces=True)
    p.add_argument("-l", "--selector", default="", metavar="SELECTOR",
                   help="label selector, e.g. app=web,tier!=db")
    p.add_argument("--field-selector", default="", metavar="SELECTOR",
                   help="field selector, e.g. spec.nodeName=n1,status.phase!=Running")
    p.add_argument("-o", "--output", metavar="FORMAT",
                   help="wide, yaml, json, name, jsonpath=TEMPLATE, jsonpath-file=FILE, custom-columns=SPEC "
                        "or custom-columns-file=FILE")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, print changes as they happen")
    p.add_argument("--no-headers", action="store_true", help="tables without the header line")
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column to tables")
    p.add_argument("--ignore-not-found", action="store_true", help="a missing NAME is not an error")
    p.add_argument("--chunk-size", type=int, default=500, metavar="N",
                   help="read large lists in pages of N objects rather than all at once; 0 reads them whole "
                        "(default 500)")
    p.set_defaults(func=run)
    intermixed(p)


def _sort(kind, objs: list[Message]) -> None:
    strategy = getattr(kind, "strategy", None)
    if strategy is not None:
        objs.sort(key=strategy.sort_key)  # the kind's order (events: oldest first)


def run(args: argparse.Namespace) -> int:
    requests = parse_resources(args.resources)
    output = parse_output(args.output)
    if args.watch and (len(requests) > 1):
        raise CliError("you may only specify a single resource type")
    several = len(requests) > 1
    single = len(requests) == 1 and len(requests[0].names) == 1

    def show(objs: list[Message], *, headers: bool, one: bool) -> None:
        sys.stdout.write(render(output, objs, single=one, several_kinds=several, headers=headers and not args.no_headers,
                                show_labels=args.show_labels, with_namespace=args.all_namespaces))

    async def get(client: ApiClient) -> int:
        failed = False
        everything: list[Message] = []
        revision = ""
        for request in requests:
            kind = request.kind
            namespace = "" if args.all_namespaces else scope(kind, namespace_of(args))
            if request.names:
                objs = []
                for name in request.names:
                    # Get (not a filtered List) so a missing object is NotFound, as kubectl reports it.
                    try:
                        objs.append(await client.get(kind.name, name, scope(kind, namespace_of(args))))
                    except NotFound:
                        if not args.ignore_not_found:
                            print(not_found(kind, name), file=sys.stderr)
                            failed = True
                if args.watch:
                    _, revision = await client.list(kind.name, namespace, args.selector, args.field_selector)
            else:
                objs, revision = await client.list(kind.name, namespace, args.selector, args.field_selector,
                                                   chunk_size=args.chunk_size)
                _sort(kind, objs)
            everything += objs
            if objs and output.format in ("", "wide", "custom-columns"):
                if several and len(everything) > len(objs):
                    sys.stdout.write("\n")  # kubectl's blank line between the tables of two kinds
                show(objs, headers=True, one=False)
        if output.format not in ("", "wide", "custom-columns") and (everything or not single):
            if everything or output.format in ("json", "yaml"):
                show(everything, headers=True, one=single)
        if (not everything and not failed and not args.watch and not any(r.names for r in requests)
                and output.format in ("", "wide", "custom-columns", "name")):
            kind = requests[0].kind
            where = f" in {namespace_of(args)} namespace" if kind.namespaced and not args.all_namespaces else ""
            print(f"No resources found{where}.", file=sys.stderr)
        sys.stdout.flush()
        if not args.watch:
            return 1 if failed else 0
        kind, names = requests[0].kind, set(requests[0].names)
        namespace = "" if args.all_namespaces else scope(kind, namespace_of(args))
        headers = not everything
        async for _type, obj, _rv in client.watch(kind.name, namespace, args.selector, args.field_selector,
                                                  resource_version=revision):
            if obj is None or (names and obj.metadata.name not in names):
                continue
            # Watched objects print one by one, as `kubectl get -w -o json` does.
            show([obj], headers=headers, one=True)
            sys.stdout.flush()
            headers = False
        return 0

    return call_api(args, get)
