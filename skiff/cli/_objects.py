"""What the object verbs (get, delete, label, annotate, patch, edit) share:
reading kubectl's resource arguments, its NotFound line, and its -o formats.

Resource arguments, as kubectl reads them:

    pods                 every pod            pods a b      pods a and b
    pods,nodes           every pod and node   pod/a node/b  one of each

Output formats (`-o`): name, wide, yaml, json, jsonpath=TEMPLATE,
jsonpath-file=FILE, custom-columns=SPEC, custom-columns-file=FILE; a table
when none is given. JSONPath and custom columns read objects as
`kubectl get -o json` prints them (skiff.api.printers.to_dict).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from google.protobuf.message import Message

from skiff.api import jsonpath, kinds, meta, printers
from skiff.cli._common import CliError, kind_arg, scope
from skiff.client import AlreadyExists, ApiClient, Conflict

FORMATS = ("custom-columns", "custom-columns-file", "json", "jsonpath", "jsonpath-file", "name", "wide", "yaml")


@dataclass
class Request:
    kind: kinds.Kind
    names: list[str] = field(default_factory=list)   # empty: every object of the kind


def parse_resources(words: list[str]) -> list[Request]:
    """kubectl's `TYPE[,TYPE...] [NAME...]` or `TYPE/NAME...`."""
    if not words:
        raise CliError("You must specify the type of resource to get. Use \"skiff api-resources\" for a "
                       "complete list of supported resources.")
    if any("/" in w for w in words):
        if not all("/" in w for w in words):
            raise CliError("there is no need to specify a resource type as a separate argument when passing "
                           "arguments in resource/name form (e.g. 'skiff get resource/<resource_name>' instead "
                           "of 'skiff get resource resource/<resource_name>'")
        requests: list[Request] = []
        for word in words:
            type_, _, name = word.partition("/")
            if not name:
                raise CliError(f"arguments in resource/name form must have a single resource and name: {word!r}")
            kind = kind_arg(type_)
            for r in requests:
                if r.kind is kind:
                    r.names.append(name)
                    break
            else:
                requests.append(Request(kind, [name]))
        return requests
    types = [t for t in words[0].split(",") if t]
    if not types:
        raise CliError(f"invalid resource type {words[0]!r}")
    if len(types) > 1 and words[1:]:
        raise CliError("names cannot be given with several resource types; use TYPE/NAME, e.g. pod/a node/b")
    return [Request(kind_arg(t), list(words[1:])) for t in types]


def not_found(kind: kinds.Kind, name: str) -> str:
    """kubectl's line for a missing object (stderr, exit 1)."""
    return f'Error from server (NotFound): {kind.resource} "{name}" not found'


def object_label(obj: Message) -> str:
    """`pod/web`, as kubectl names an object in its messages."""
    return printers.name_of(obj)


async def create_and_report(client: ApiClient, obj: Message, *, exists: str, verb: str = "created") -> Message:
    """The end of kubectl's create, expose and autoscale: the object created and `<kind>/<name> <verb>`
    printed; one of that name already there: the error `exists` (each command's kubectl wording)."""
    try:
        created = await client.create(obj)
    except AlreadyExists:
        raise CliError(exists) from None
    print(f"{object_label(created)} {verb}")
    return created


# ---------------------------------------------------------------- -o

@dataclass(frozen=True)
class Output:
    format: str                                   # "" (a table), or one of FORMATS
    template: jsonpath.Template | None = None
    columns: list[jsonpath.Column] | None = None


def parse_output(value: str | None) -> Output:
    """The -o value checked before anything is fetched, as kubectl does."""
    if not value:
        return Output("")
    name, sep, arg = value.partition("=")
    if name not in FORMATS or (name in ("json", "yaml", "name", "wide") and sep):
        raise CliError(f'unable to match a printer suitable for the output format "{value}", allowed formats '
                       f"are: {','.join(FORMATS)}")
    try:
        if name in ("jsonpath", "jsonpath-file"):
            if not arg:
                raise CliError("template format specified but no template given")
            text = _read(arg) if name == "jsonpath-file" else arg
            return Output("jsonpath", template=jsonpath.parse(text))
        if name in ("custom-columns", "custom-columns-file"):
            if name == "custom-columns-file":
                return Output("custom-columns", columns=jsonpath.parse_custom_columns_file(_read(arg)))
            return Output("custom-columns", columns=jsonpath.parse_custom_columns(arg))
    except jsonpath.JsonPathError as exc:
        raise CliError(str(exc)) from None
    return Output(name)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise CliError(f"error reading template {path}: {exc.strerror}") from None


def render(output: Output, objs: list[Message], *, single: bool, several_kinds: bool = False,
           headers: bool = True, show_labels: bool = False, with_namespace: bool = False) -> str:
    """`objs` printed in `output`'s format; `single`: one object asked for by name
    (json/yaml/jsonpath print it bare rather than in a List)."""
    if output.format == "name":
        return "".join(printers.name_of(o) + "\n" for o in objs)
    if output.format in ("json", "yaml", "jsonpath"):
        data = printers.to_dict(objs[0]) if single and len(objs) == 1 else printers.to_list_dict(objs)
        if output.format == "jsonpath":
            assert output.template is not None
            return output.template.render(data)
        return (printers.dump_json if output.format == "json" else printers.dump_yaml)(data)
    if output.format == "custom-columns":
        assert output.columns is not None
        rows = [[c.header for c in output.columns]] if headers else []
        rows += [jsonpath.column_values(output.columns, printers.to_dict(o)) for o in objs]
        return aligned(rows)
    return _table(objs, wide=output.format == "wide", several_kinds=several_kinds, headers=headers,
                  show_labels=show_labels, with_namespace=with_namespace)


def _table(objs: list[Message], *, wide: bool, several_kinds: bool, headers: bool, show_labels: bool,
           with_namespace: bool) -> str:
    if not objs:
        return ""
    kind = kinds.kind_of(objs[0])
    shown = objs
    if several_kinds:  # kubectl names rows `pod/web` when a listing mixes kinds
        shown = [meta.copy(o) for o in objs]
        for copy in shown:
            copy.metadata.name = printers.name_of(copy)
    text = printers.table(shown, kind=kind, wide=wide, with_namespace=with_namespace, headers=headers)
    if not show_labels:
        return text
    lines = text.splitlines()
    width = max(len(line) for line in lines)
    labels = [",".join(f"{k}={v}" for k, v in sorted(o.metadata.labels.items())) or "<none>" for o in objs]
    if headers:
        labels.insert(0, "LABELS")
    return "".join(f"{line.ljust(width)}   {label}\n" for line, label in zip(lines, labels))


def aligned(rows: list[list[str]]) -> str:
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() + "\n" for r in rows)


# ---------------------------------------------------------------- read, change, write

async def change(client: ApiClient, kind: kinds.Kind, namespace: str, name: str,
                 mutate: Callable[[Message], Message], *, attempts: int = 5) -> tuple[Message, bool]:
    """GET the object, `mutate` a copy, UPDATE it with the read resourceVersion
    (compare-and-swap); on Conflict read and mutate again. Returns the object
    as stored and whether anything changed (nothing is written if not).
    NotFound passes through; `mutate` raises CliError to refuse."""
    for _ in range(attempts):
        live = await client.get(kind.name, name, scope(kind, namespace))
        wanted = mutate(meta.copy(live))
        wanted.metadata.resource_version = live.metadata.resource_version
        if wanted == live:
            return live, False
        try:
            return await client.update(wanted), True
        except Conflict:
            continue
    raise Conflict(f'Operation cannot be fulfilled on {kind.resource} "{name}": the object has been modified; '
                   "please apply your changes to the latest version and try again")


def intermixed(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Let options and positionals mix, as kubectl's flags do (`label pods --all k=v`):
    argparse stops filling a greedy positional at the first option otherwise."""

    class Intermixed(type(parser)):  # type: ignore[misc]
        _inside = False

        def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001 - argparse's signature
            if self._inside:
                return super().parse_known_args(args, namespace)
            self._inside = True
            try:
                return self.parse_known_intermixed_args(args, namespace)
            finally:
                self._inside = False

    parser.__class__ = Intermixed
    return parser
