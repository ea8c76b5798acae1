"""`skiff explain TYPE[.field.path]`: the documentation of a kind or a field, as kubectl explain.

Fields, their JSON names and types come from the protobuf schema, the text
from the comments of proto/skiff/v1/*.proto (skiff.api.schema).
"""
from __future__ import annotations

import argparse
import textwrap

from skiff.api import schema
from skiff.cli._common import CliError, kind_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "explain", help="document a kind and its fields",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Describe the fields of a kind, or of one field given as a dotted path, with their "
                    "types and the descriptions written in Skiff's API schema.",
        epilog="examples:\n  skiff explain pods\n  skiff explain pods.spec.containers\n"
               "  skiff explain node.status --recursive")
    p.add_argument("path", metavar="TYPE[.FIELD...]")
    p.add_argument("--recursive", action="store_true", help="list every field below, without descriptions")
    p.set_defaults(func=run)


def _wrapped(text: str, indent: str) -> str:
    return textwrap.fill(text, width=80, initial_indent=indent, subsequent_indent=indent) + "\n"


def _tree(desc, depth: int, seen: tuple[str, ...], top: bool) -> str:
    out = ""
    for f in schema.fields_of(desc, top_level=top):
        out += f"{'  ' * depth}{f.name}\t<{f.type}>\n"
        if f.message is not None and f.message.full_name not in seen:
            out += _tree(f.message, depth + 1, seen + (f.message.full_name,), False)
    return out


def explain(path: str, *, recursive: bool = False) -> str:
    resource, *fields = path.split(".")
    kind = kind_arg(resource)
    desc = kind.message.DESCRIPTOR
    try:
        field, nested = schema.resolve(desc, fields)
    except schema.SchemaError as exc:
        raise CliError(str(exc)) from None
    out = f"KIND:       {kind.name}\nVERSION:    {kind.api_version}\n\n"
    if field is not None:
        out += f"FIELD: {field.name} <{field.type}>\n\n"
    text = field.description if field is not None else schema.description(desc)
    out += "DESCRIPTION:\n" + _wrapped(text or "<empty>", "    ") + "    \n"
    if nested is None:
        return out
    out += "FIELDS:\n"
    if recursive:
        return out + _tree(nested, 1, (nested.full_name,), field is None)
    for f in schema.fields_of(nested, top_level=field is None):
        out += f"  {f.name}\t<{f.type}>\n"
        out += (_wrapped(f.description, "    ") if f.description else "") + "\n"
    return out


def run(args: argparse.Namespace) -> int:
    print(explain(args.path, recursive=args.recursive), end="")
    return 0
