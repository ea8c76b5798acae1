"""`skiff api-resources`: the kinds this Skiff serves, from the kinds registry, as kubectl prints them."""
from __future__ import annotations

import argparse

from skiff.api import kinds
from skiff.cli._objects import aligned


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "api-resources", help="list the kinds the API serves",
        description="Print the supported API resources: NAME SHORTNAMES APIVERSION NAMESPACED KIND.")
    p.add_argument("-o", "--output", choices=("wide", "name"), help="name: only the resource names")
    p.add_argument("--namespaced", choices=("true", "false"), help="only namespaced (true) or cluster-scoped (false) kinds")
    p.add_argument("--no-headers", action="store_true", help="no header line")
    p.set_defaults(func=run)


def _group(kind: kinds.Kind) -> str:
    return kind.api_version.rpartition("/")[0]


def run(args: argparse.Namespace) -> int:
    served = sorted(kinds.KINDS, key=lambda k: (_group(k) != "", _group(k), k.resource))
    if args.namespaced is not None:
        served = [k for k in served if k.namespaced == (args.namespaced == "true")]
    if args.output == "name":
        print("".join(f"{k.resource}{'.' + _group(k) if _group(k) else ''}\n" for k in served), end="")
        return 0
    rows = [] if args.no_headers else [["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]]
    for k in served:
        short = ",".join(a for a in k.aliases if a not in (k.resource, k.name.lower()))
        rows.append([k.resource, short, k.api_version, str(k.namespaced).lower(), k.name])
    print(aligned(rows), end="")
    return 0
