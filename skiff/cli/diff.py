"""`skiff diff -f FILE`: what `skiff apply -f FILE` would change, as a unified diff.

Per object: the live object (empty when absent) against the object apply
would write (skiff.cli._applier's three-way merge, sent to the server as a
dry run so its defaults and validation show), both as YAML with the metadata
every write changes (resourceVersion, generation, managedFields) left out.
Exit codes as kubectl's: 0 no differences, 1 differences, 2 an error.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from typing import Any

from google.protobuf.message import Message

from skiff.api.printers import dump_yaml, to_dict
from skiff.cli._applier import key_of, live_object, planned
from skiff.cli._common import add_namespace_flags, call_api, describe_api_error
from skiff.cli.apply import load_documents
from skiff.cli.errors import CliError
from skiff.client import ApiClient, ApiError

_NOISE = ("resourceVersion", "generation", "managedFields")
ERROR_EXIT = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "diff", help="show what apply would change",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Diff the live objects against what `skiff apply -f` would make of them (unified "
                    "diff of YAML; resourceVersion, generation and managedFields left out).\n\n"
                    "Exit status: 0 No differences were found. 1 Differences were found. >1 skiff failed "
                    "with an error.")
    p.add_argument("-f", "--filename", action="append", required=True, metavar="FILE|DIR|-",
                   help="a manifest file, a directory of *.yaml/*.yml/*.json, or - for stdin (repeatable)")
    add_namespace_flags(p)
    p.set_defaults(func=run)


def _text(obj: Message | None) -> list[str]:
    if obj is None:
        return []
    data: dict[str, Any] = to_dict(obj)
    metadata = data.get("metadata", {})
    for key in _NOISE:
        metadata.pop(key, None)
    return dump_yaml(data).splitlines(keepends=True)


def run(args: argparse.Namespace) -> int:
    documents, failed = load_documents(args.filename, namespace=args.namespace)
    if failed:
        return ERROR_EXIT

    async def diff_all(client: ApiClient) -> int:
        differs = False
        for doc in documents:
            live = await live_object(client, doc.obj)
            target = planned(doc.obj, live)
            if live is None or target != live:
                target, _ = await client.apply(target, dry_run=True)
            kind, namespace, name = key_of(doc.obj)
            path = ".".join(filter(None, (kind.api_version.replace("/", "."), kind.name, namespace, name)))
            lines = list(difflib.unified_diff(_text(live), _text(target), fromfile=f"LIVE/{path}",
                                              tofile=f"MERGED/{path}"))
            if lines:
                differs = True
                sys.stdout.writelines(line if line.endswith("\n") else line + "\n" for line in lines)
        sys.stdout.flush()
        return 1 if differs else 0

    try:
        return call_api(args, diff_all)
    except (CliError, ApiError) as exc:
        print(f"error: {describe_api_error(exc) if isinstance(exc, ApiError) else exc}", file=sys.stderr)
        return ERROR_EXIT
