"""`skiff label` and `skiff annotate`: set or remove labels/annotations, as kubectl.

    skiff label pods web tier=front        pod/web labeled
    skiff label pod/web tier-              pod/web unlabeled
    skiff annotate pods --all note='x y'   pod/a annotated ...

Changing a key that already has another value needs --overwrite (kubectl's
rule, so a typo does not silently replace a value). Each object is read,
changed and written back with its resourceVersion (skiff.cli._objects.change),
so a concurrent writer is never overwritten.
"""
from __future__ import annotations

import argparse
import sys

from google.protobuf.message import Message

from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of, scope
from skiff.cli._objects import change, intermixed, not_found, object_label, parse_resources
from skiff.client import ApiClient, NotFound

_WHAT = {"label": ("labels", "label"), "annotate": ("annotations", "annotation")}


def register(subparsers: argparse._SubParsersAction) -> None:
    for command, (field, noun) in _WHAT.items():
        p = intermixed(subparsers.add_parser(
            command, help=f"update the {field} of objects",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            description=f"Add, change (with --overwrite) or remove (KEY-) {field} of objects.",
            epilog="examples:\n"
                   f"  skiff {command} pods web {'tier=front' if noun == 'label' else 'note=hello'}\n"
                   f"  skiff {command} pod/web {'tier' if noun == 'label' else 'note'}-\n"
                   f"  skiff {command} pods --all --overwrite {'env=prod' if noun == 'label' else 'owner=ops'}"))
        p.add_argument("words", metavar=f"TYPE NAME|TYPE/NAME ... KEY=VAL ... KEY-", nargs="+",
                       help=f"the objects, then the {field} to set (KEY=VAL) or remove (KEY-)")
        add_namespace_flags(p)
        p.add_argument("--overwrite", action="store_true",
                       help=f"allow changing a {noun} that already has a value")
        p.add_argument("-l", "--selector", default="", metavar="SELECTOR", help="objects with these labels")
        p.add_argument("--all", dest="all_objects", action="store_true", help="every object of TYPE")
        p.set_defaults(func=run, field=field, noun=noun)


def parse_changes(words: list[str], noun: str) -> tuple[list[str], dict[str, str], list[str]]:
    """Split `TYPE NAME k=v k-` into the object words, what to set and what to remove."""
    at = next((i for i, w in enumerate(words) if "=" in w or (w.endswith("-") and len(w) > 1)), len(words))
    targets, specs = words[:at], words[at:]
    if not specs:
        raise CliError(f"at least one {noun} update is required")
    sets, removes = {}, []
    for spec in specs:
        if "=" in spec:
            key, _, value = spec.partition("=")
            # An annotation's value is free text ("... web=img:v2"), as kubectl takes it; a label's is not.
            if not key or ("=" in value and noun == "label"):
                raise CliError(f"invalid {noun} spec: {spec}")
            sets[key] = value
        elif spec.endswith("-") and len(spec) > 1:
            removes.append(spec[:-1])
        else:
            raise CliError(f"invalid {noun} spec: {spec}")
    both = set(sets) & set(removes)
    if both:
        raise CliError(f"can not both modify and remove the following {noun}(s) in the same command: "
                       f"{', '.join(sorted(both))}")
    return targets, sets, removes


def run(args: argparse.Namespace) -> int:
    targets, sets, removes = parse_changes(args.words, args.noun)
    requests = parse_resources(targets)
    by_query = args.all_objects or args.selector
    if by_query and any(r.names for r in requests):
        raise CliError("names cannot be given with --all or -l")
    if not by_query and not any(r.names for r in requests):
        raise CliError("one or more resources must be specified as <resource> <name> or <resource>/<name>")

    def mutate(obj: Message) -> Message:
        current = getattr(obj.metadata, args.field)
        if not args.overwrite:
            clashes = [k for k, v in sets.items() if k in current and current[k] != v]
            if clashes and args.noun == "label":
                k = clashes[0]
                raise CliError(f"'{k}' already has a value ({current[k]}), and --overwrite is false")
            if clashes:
                found = "; ".join(f"'{k}' already has a value ({current[k]})" for k in clashes)
                raise CliError(f"--overwrite is false but found the following declared annotation(s): {found}")
        for key in removes:
            if key not in current and args.noun == "label":
                print(f'label "{key}" not found.')
            current.pop(key, None)
        current.update(sets)
        return obj

    async def update_all(client: ApiClient) -> int:
        failed = False
        targets_: list[tuple] = []
        for request in requests:
            kind = request.kind
            if by_query:
                objs, _ = await client.list(kind.name, scope(kind, namespace_of(args)), args.selector)
                targets_ += [(kind, o.metadata.name) for o in objs]
            else:
                targets_ += [(kind, name) for name in request.names]
        for kind, name in targets_:
            try:
                before = await client.get(kind.name, name, scope(kind, namespace_of(args)))
                stored, changed = await change(client, kind, namespace_of(args), name, mutate)
            except NotFound:
                print(not_found(kind, name), file=sys.stderr)
                failed = True
                continue
            print(f"{object_label(stored)} {_verb(args.noun, before, stored, changed, args.overwrite, args.field)}",
                  flush=True)
        return 1 if failed else 0

    return call_api(args, update_all)


def _verb(noun: str, before: Message, after: Message, changed: bool, overwrite: bool, field: str) -> str:
    """kubectl's word: annotate always says "annotated"; label says "not labeled"
    when nothing changed and "unlabeled" when it only removed."""
    if noun == "annotation":
        return "annotated"
    if not changed:
        return "not labeled"
    if not overwrite and len(getattr(after.metadata, field)) < len(getattr(before.metadata, field)):
        return "unlabeled"
    return "labeled"
