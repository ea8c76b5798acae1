"""`skiff edit TYPE NAME`: change a live object in your editor, as kubectl edit.

    GET ──> YAML in a temp file ──> $KUBE_EDITOR / $EDITOR / vi
              ^                          │
              │  invalid: the errors as  ├── unchanged ──> "Edit cancelled, no changes made."
              │  '#' comments on top,    │
              └── the user's text kept ──┤
                                         └── valid ──> three-way merge of (as opened -> as saved)
                                                       onto the live object, UPDATE with its
                                                       resourceVersion ──> "pod/web edited"

The user's changes are applied to the object as it is when saved (not as it
was when opened), so a status written meanwhile is not undone; a Conflict
re-reads and merges again.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from google.protobuf.message import Message

from skiff.api import merge
from skiff.api.convert import ConversionError, to_object
from skiff.api.printers import dump_json, dump_yaml, to_dict
from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of, scope
from skiff.cli._objects import change, not_found, object_label, parse_resources
from skiff.client import ApiClient, Invalid, NotFound

HEADER = ("# Please edit the object below. Lines beginning with a '#' will be ignored,\n"
          "# and an empty file will abort the edit. If an error occurs while saving this file will be\n"
          "# reopened with the relevant failures.\n"
          "#\n")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "edit", help="edit an object in your editor",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Open an object as YAML in $KUBE_EDITOR, else $EDITOR, else vi; save and quit to "
                    "update it. An invalid edit reopens the file with the errors at the top and your text "
                    "kept; saving it unchanged, or an unchanged first save, cancels.",
        epilog="examples:\n  skiff edit pod web\n  KUBE_EDITOR=nano skiff edit node/n1 -o json")
    p.add_argument("resources", metavar="TYPE NAME | TYPE/NAME", nargs="+")
    add_namespace_flags(p)
    p.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="edit as yaml (default) or json")
    p.set_defaults(func=run)


def editor_command() -> list[str]:
    return shlex.split(os.environ.get("KUBE_EDITOR") or os.environ.get("EDITOR") or "vi")


def _content(text: str) -> str:
    """The file without its comment lines (ours and the user's)."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("#"))


def _parse(text: str, label: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConversionError(f"{label}: the file is not valid YAML or JSON: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{label}: expected an object")
    to_object(data, source=label)
    return data


def run(args: argparse.Namespace) -> int:
    requests = parse_resources(args.resources)
    targets = [(r.kind, name) for r in requests for name in r.names]
    if len(targets) != 1:
        raise CliError("name one object to edit: `skiff edit TYPE NAME` or `skiff edit TYPE/NAME`")
    kind, name = targets[0]
    dump = dump_json if args.output == "json" else dump_yaml

    async def edit(client: ApiClient) -> int:
        try:
            live = await client.get(kind.name, name, scope(kind, namespace_of(args)))
        except NotFound:
            print(not_found(kind, name), file=sys.stderr)
            return 1
        original = to_dict(live)
        given = dump(original)           # what the user was last shown (without comments)
        errors: list[str] = []
        fd, path = tempfile.mkstemp(prefix="skiff-edit-", suffix=f".{args.output}")
        os.close(fd)
        try:
            while True:
                notes = "".join(f"# {line}\n" for e in errors for line in (f"* {e}").splitlines())
                head = HEADER + (f'# {kind.resource} "{name}" was not valid:\n{notes}#\n' if errors else "")
                Path(path).write_text(head + given)
                status = subprocess.call([*editor_command(), path])
                if status != 0:
                    raise CliError(f"there was a problem with the editor {' '.join(editor_command())!r}")
                saved = _content(Path(path).read_text())
                if not saved.strip():
                    print("Edit cancelled, saved file was empty.", file=sys.stderr)
                    return 0 if not errors else 1
                if saved == given:
                    if not errors:
                        print("Edit cancelled, no changes made.")
                        return 0
                    keep = tempfile.NamedTemporaryFile("w", prefix="skiff-edit-", suffix=f".{args.output}",
                                                       delete=False)
                    keep.write(saved)
                    keep.close()
                    print(f'A copy of your changes has been stored to "{keep.name}"', file=sys.stderr)
                    raise CliError("Edit cancelled, no valid changes were saved.")
                try:
                    edited = _parse(saved, object_label(live))
                    stored, _ = await change(client, kind, namespace_of(args), name,
                                             lambda current: _merged(original, edited, current))
                except (ConversionError, Invalid) as exc:
                    errors, given = [exc.message if isinstance(exc, Invalid) else str(exc)], saved
                    continue
                print(f"{object_label(stored)} edited")
                return 0
        finally:
            os.unlink(path)

    return call_api(args, edit)


def _merged(original: dict[str, Any], edited: dict[str, Any], current: Message) -> Message:
    """The user's changes (original -> edited) applied to the object as it is now."""
    return to_object(merge.three_way(original, edited, to_dict(current)))
