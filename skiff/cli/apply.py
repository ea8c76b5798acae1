"""`skiff apply -f FILE|DIR|-`: create or update the objects of manifests.

Every document is parsed first (skiff.api.manifest); the bad ones are listed
with file, document, field path and line and are not sent; the good ones are
applied in order, as kubectl does. Exit code 1 if anything failed.
"""
from __future__ import annotations

import argparse
import sys

from skiff.api import kinds, manifest
from skiff.api.printers import name_of
from skiff.cli._applier import apply_one, prune
from skiff.cli._common import CliError, add_namespace_flags, call_api
from skiff.client import ApiClient, ApiError, Invalid, Unavailable


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "apply", help="create or update objects from manifests",
        description="Create or update the objects in YAML/JSON manifests. Prints "
                    "'pod/NAME created|configured|unchanged' per object; documents with errors "
                    "are listed (file:line: document N of M: field.path: problem) and not applied, "
                    "the others still are. Exit code 1 if any document failed.")
    p.add_argument("-f", "--filename", action="append", required=True, metavar="FILE|DIR|-",
                   help="a manifest file, a directory of *.yaml/*.yml/*.json, or - for stdin (repeatable)")
    add_namespace_flags(p)
    p.add_argument("--dry-run", nargs="?", const="server", default="none", choices=("none", "client", "server"),
                   metavar="none|client|server",
                   help='Must be "none", "server", or "client". client: print what would be sent, send '
                        'nothing; server: the server validates and defaults, stores nothing (a bare --dry-run '
                        'means server, as in earlier Skiff)')
    p.add_argument("--prune", action="store_true",
                   help="after applying, delete the objects of the applied kinds that match -l (or --all), "
                        "were created by apply, and are no longer in the manifests")
    p.add_argument("-l", "--selector", default="", metavar="SELECTOR", help="with --prune: the label selector")
    p.add_argument("--all", dest="prune_all", action="store_true", help="with --prune: every applied object")
    p.set_defaults(func=run)


def load_documents(paths: list[str], *, namespace: str | None) -> tuple[list[manifest.Document], bool]:
    """The valid documents, after printing the errors of the others; and whether any failed."""
    good: list[manifest.Document] = []
    failed = False
    for item in manifest.load(paths):
        if isinstance(item, manifest.ManifestError):
            print(f"error: {item}", file=sys.stderr)
            failed = True
            continue
        if item.errors:
            for error in item.errors:
                print(f"error: {error}", file=sys.stderr)
            failed = True
            continue
        if namespace and kinds.kind_of(item.obj).namespaced:
            if item.obj.metadata.namespace and item.obj.metadata.namespace != namespace:
                print(f"error: {item.error('metadata.namespace', f'{item.obj.metadata.namespace!r} does not match --namespace {namespace!r}')}",
                      file=sys.stderr)
                failed = True
                continue
            item.obj.metadata.namespace = namespace
        good.append(item)
    return good, failed


def document_error(doc: manifest.Document, exc: ApiError) -> str:
    """The server's refusal of one document: with file, document and line for an
    invalid field (the path's line from the manifest), else with the document's label."""
    if isinstance(exc, Invalid):
        message = exc.message
        if exc.field_path and message.startswith(exc.field_path + ": "):
            message = message[len(exc.field_path) + 2:]
        return f"error: {doc.error(exc.field_path, message)}"
    return f"error: {doc.label}: {exc.message}"


def run(args: argparse.Namespace) -> int:
    if args.prune and not (args.selector or args.prune_all):
        raise CliError("all resources selected for prune without explicitly passing --all. To prune all "
                       "resources, pass the --all flag. If you did not mean to prune all resources, specify "
                       "a label selector")
    if (args.selector or args.prune_all) and not args.prune:
        raise CliError("-l and --all select what --prune deletes; add --prune")
    documents, failed = load_documents(args.filename, namespace=args.namespace)
    suffix = {"none": "", "client": " (dry run)", "server": " (server dry run)"}[args.dry_run]

    async def apply_all(client: ApiClient) -> int:
        nonlocal failed
        for doc in documents:
            try:
                outcome = await apply_one(client, doc.obj, dry_run=args.dry_run)
            except Unavailable:
                raise  # nothing else will get through either: one line from main
            except ApiError as exc:
                print(document_error(doc, exc), file=sys.stderr)
                failed = True
                continue
            print(f"{name_of(outcome.obj)} {outcome.result}{suffix}", flush=True)
        if args.prune and not failed:
            await prune(client, [d.obj for d in documents], selector=args.selector,
                        dry_run=args.dry_run, suffix=suffix)
        return 1 if failed else 0

    if not documents:
        return 1 if failed else 0
    return call_api(args, apply_all)
