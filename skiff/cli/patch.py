"""`skiff patch TYPE NAME -p PATCH [--type strategic|merge|json]`: change part of an object.

The patch (JSON or YAML, from -p or --patch-file) is applied here, on the
object as `get -o json` prints it (skiff.api.merge: strategic merge patch
with Kubernetes' list keys, RFC 7386 merge patch, RFC 6902 JSON patch); the
result is checked as a manifest would be and written back with the read
resourceVersion, read and patched again on a Conflict.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import yaml
from google.protobuf.message import Message

from skiff.api import merge
from skiff.api.convert import ConversionError, to_object
from skiff.api.printers import to_dict
from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of
from skiff.cli._objects import change, intermixed, not_found, object_label, parse_resources
from skiff.client import ApiClient, NotFound

PATCHERS: dict[str, Callable[[dict, Any], Any]] = {
    "strategic": merge.strategic_merge_patch,
    "merge": merge.json_merge_patch,
    "json": merge.json_patch,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "patch", help="update fields of an object with a patch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Update fields of an object with a strategic merge patch (default: lists of containers, "
                    "env, ports ... merge by their keys), a JSON merge patch (RFC 7386) or a JSON patch "
                    "(RFC 6902). The patch is JSON or YAML.",
        epilog="examples:\n"
               "  skiff patch node n1 -p '{\"spec\":{\"unschedulable\":true}}'\n"
               "  skiff patch pod web -p '{\"spec\":{\"containers\":[{\"name\":\"main\",\"image\":\"busybox:2\"}]}}'\n"
               "  skiff patch pod web --type merge -p '{\"metadata\":{\"labels\":{\"tier\":null}}}'\n"
               "  skiff patch pod web --type json -p '[{\"op\":\"replace\",\"path\":\"/spec/containers/0/image\","
               "\"value\":\"busybox:2\"}]'")
    p.add_argument("resources", metavar="TYPE NAME | TYPE/NAME", nargs="+")
    add_namespace_flags(p)
    p.add_argument("-p", "--patch", metavar="PATCH", help="the patch, JSON or YAML")
    p.add_argument("--patch-file", metavar="FILE", help="read the patch from FILE")
    p.add_argument("--type", default="strategic", choices=tuple(PATCHERS),
                   help="strategic (default), merge or json")
    p.set_defaults(func=run)
    intermixed(p)


def load_patch(args: argparse.Namespace) -> Any:
    if bool(args.patch) == bool(args.patch_file):
        raise CliError("must specify exactly one of --patch or --patch-file" if args.patch or args.patch_file
                       else "must specify --patch or --patch-file containing the contents of the patch")
    text = args.patch
    if args.patch_file:
        try:
            text = Path(args.patch_file).read_text()
        except OSError as exc:
            raise CliError(f"unable to read patch file: {exc.strerror}: {args.patch_file}") from None
    try:
        patch = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CliError(f"unable to parse {text!r}: {str(exc).splitlines()[0]}") from None
    expected = list if args.type == "json" else dict
    if not isinstance(patch, expected):
        raise CliError(f"unable to parse {text!r}: a {args.type} patch is a JSON "
                       f"{'list of operations' if expected is list else 'object'}")
    return patch


def run(args: argparse.Namespace) -> int:
    patch = load_patch(args)
    requests = parse_resources(args.resources)
    targets = [(r.kind, name) for r in requests for name in r.names]
    if not targets:
        raise CliError("one resource must be specified as <resource> <name> or <resource>/<name>")

    def patched(obj: Message) -> Message:
        try:
            data = PATCHERS[args.type](to_dict(obj), patch)
            return to_object(data)
        except merge.PatchError as exc:
            raise CliError(f"{object_label(obj)}: the patch does not apply: {exc}") from None
        except ConversionError as exc:
            raise CliError(f'{type(obj).__name__} "{obj.metadata.name}" is invalid: {exc}') from None

    async def patch_all(client: ApiClient) -> int:
        failed = False
        for kind, name in targets:
            try:
                stored, changed = await change(client, kind, namespace_of(args), name, patched)
            except NotFound:
                print(not_found(kind, name), file=sys.stderr)
                failed = True
                continue
            print(f"{object_label(stored)} patched{'' if changed else ' (no change)'}", flush=True)
        return 1 if failed else 0

    return call_api(args, patch_all)
