"""Manifests: YAML/JSON files turned into typed API objects, or into errors that
name the file, the document, the field path and the line.

The CLI (`skiff apply -f`, `skiff delete -f`) is the caller. Parsing goes in
three steps per document, and a bad document never stops the others (kubectl
applies the good documents of a file and lists the bad ones):

1. The text is split into documents at `---` lines and each is *composed*
   (yaml's node tree, which keeps line marks) rather than loaded, so every
   field path can be mapped back to the line it came from.
2. The node tree is walked against the protobuf descriptor of the document's
   kind, using the fields' JSON (Kubernetes) names. The walk catches what
   `json_format.ParseDict` would report vaguely or not at all: unknown and
   misspelt fields (with a suggestion), wrong YAML types (a string where a list
   is expected, `value: 1` for an env var as Kubernetes rejects it), duplicate
   keys, missing names and containers, bad quantities. Quantities may be YAML
   numbers (`cpu: 0.5`) and are coerced to their text.
3. The clean dict goes through `ParseDict` into the typed message, and
   `skiff.api.kinds.validate` runs the kind's semantic checks shared with the
   API server; its field paths are mapped to lines as well.

A `kind: List` document (what `skiff get -o yaml` prints) stands for its
items; their errors carry the path `items[N]....`. Documents are counted from
1, and messages say "document 2 of 3".
"""
from __future__ import annotations

import base64
import binascii
import datetime
import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence, TextIO

import yaml
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from skiff.api import kinds
from skiff.api.quantity import QuantityError, parse_quantity

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

# Map fields whose values are quantities: YAML numbers are accepted and kept as text.
_QUANTITY_FIELDS = {
    ("skiff.v1.ResourceRequirements", "limits"), ("skiff.v1.ResourceRequirements", "requests"),
    ("skiff.v1.NodeStatus", "capacity"), ("skiff.v1.NodeStatus", "allocatable"),
    ("skiff.v1.EmptyDirVolumeSource", "size_limit"), ("skiff.v1.PodSpec", "overhead"),
}
# Kubernetes' IntOrString fields, strings here: a YAML integer is kept as its text
# (skiff/api/intstr.py parses both forms).
_INT_OR_STRING_FIELDS = {
    ("skiff.v1.RollingUpdateDeployment", "max_surge"), ("skiff.v1.RollingUpdateDeployment", "max_unavailable"),
    ("skiff.v1.RollingUpdateDaemonSet", "max_surge"), ("skiff.v1.RollingUpdateDaemonSet", "max_unavailable"),
    ("skiff.v1.HTTPGetAction", "port"), ("skiff.v1.TCPSocketAction", "port"),
    ("skiff.v1.ResourceFieldSelector", "divisor"), ("skiff.v1.EmptyDirVolumeSource", "size_limit"),
    ("skiff.v1.PodDisruptionBudgetSpec", "min_available"), ("skiff.v1.PodDisruptionBudgetSpec", "max_unavailable"),
    ("skiff.v1.ServicePort", "target_port"), ("skiff.v1.NetworkPolicyPort", "port"),
}
_TIMESTAMP = "google.protobuf.Timestamp"
_INT_TYPES = {
    FieldDescriptor.TYPE_INT32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-2**31, 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1), FieldDescriptor.TYPE_INT64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-2**63, 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_TAG = "tag:yaml.org,2002:"
_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$")
MAX_DEPTH = 100
"""How deeply a document may nest (the deepest Skiff object is about 10 levels):
yaml's composer recurses per level, so a deeper one would be a RecursionError."""
MAX_ALIASED_VALUES = 100_000
"""How many values YAML aliases may add to a document's own (a few kilobytes of
aliases to aliases expanded to 300 000 env entries and 23 s of CPU in the CLI)."""
_KNOWN_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq")}
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class ManifestError:
    """One problem in one document: where it is and what is wrong."""
    source: str            # the file name as given, or "<stdin>"
    document: int | None   # 1-based; None when the source itself is unreadable
    documents: int         # how many documents the source holds
    line: int | None       # 1-based line in the source
    path: str              # the field path ("spec.containers[0].image"), "" for the whole document
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        if self.document is not None:
            where += f": document {self.document} of {self.documents}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass(frozen=True)
class Document:
    """One document of a manifest: the typed object, or the errors that stop it."""
    source: str
    index: int             # 1-based
    total: int
    line: int              # where the document starts
    kind: str = ""         # as written, best effort even when invalid
    name: str = ""
    obj: Message | None = None
    errors: tuple[ManifestError, ...] = ()
    # field path (relative to the object) -> line, so errors found later (by
    # the API server) point at lines too
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    prefix: str = ""       # "items[2]" for an item of a `kind: List`

    def line_of(self, path: str) -> int:
        """The line of `path`, or of its nearest ancestor that was written."""
        return _line_of(self.lines, path, default=self.line)

    def error(self, path: str, message: str) -> ManifestError:
        """An error about this object found after parsing (e.g. by the server)."""
        return ManifestError(self.source, self.index, self.total, self.line_of(path) if path else self.line,
                             _prefixed(self.prefix, path), message)

    @property
    def ok(self) -> bool:
        return self.obj is not None and not self.errors

    @property
    def label(self) -> str:
        """`pod/hello` as kubectl names objects, or the source and index."""
        if self.kind and self.name:
            return f"{self.kind.lower()}/{self.name}"
        return f"{self.source}: document {self.index} of {self.total}"


def load(paths: Sequence[str], *, stdin: TextIO | None = None) -> list[Document | ManifestError]:
    """Parse every document of every path. A path is a file, a directory (its
    *.yaml, *.yml and *.json files, sorted, not recursive) or "-" for stdin.
    Unreadable sources come back as a ManifestError in the list, in order."""
    out: list[Document | ManifestError] = []
    for path in paths:
        if path == "-":
            out.extend(parse_text((stdin or sys.stdin).read(), source="<stdin>"))
            continue
        p = Path(path)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in MANIFEST_SUFFIXES)
            if not files:
                out.append(_source_error(path, "directory holds no *.yaml, *.yml or *.json files"))
            for f in files:
                out.extend(_parse_file(f, source=str(f)))
        else:
            out.extend(_parse_file(p, source=path))
    return out


def _parse_file(p: Path, *, source: str) -> list[Document | ManifestError]:
    try:
        text = p.read_text(encoding="utf-8-sig")  # -sig: a BOM from a Windows editor is not content
    except FileNotFoundError:
        return [_source_error(source, "no such file or directory")]
    except (OSError, UnicodeDecodeError) as exc:
        return [_source_error(source, f"cannot read: {getattr(exc, 'strerror', None) or exc}")]
    return list(parse_text(text, source=source))


def _source_error(source: str, message: str) -> ManifestError:
    return ManifestError(source=source, document=None, documents=0, line=None, path="", message=message)


def parse_text(text: str, *, source: str) -> list[Document | ManifestError]:
    """Parse a multi-document YAML (or JSON) text."""
    chunks = [c for c in _split_documents(text) if _has_content(c[1])]
    if not chunks:
        return [_source_error(source, "no documents (the file is empty)")]
    return [doc for i, (first, body) in enumerate(chunks, start=1)
            for doc in _parse_document(body, source=source, index=i, total=len(chunks), first_line=first)]


def _split_documents(text: str) -> Iterable[tuple[int, str]]:
    """(first line, text) of each `---`-separated document. Splitting before
    yaml sees the text means a syntax error spoils one document, not the file."""
    start, lines = 1, []
    for number, line in enumerate(text.splitlines(), start=1):
        if _SEPARATOR.match(line):
            yield start, "\n".join(lines)
            # Content after "--- " on the same line belongs to the next document.
            start, lines = number, [" " * 4 + line[3:]]
        else:
            lines.append(line)
    yield start, "\n".join(lines)


def _has_content(body: str) -> bool:
    return any(ln.strip() and not ln.lstrip().startswith("#") and ln.strip() != "..."
               for ln in body.splitlines())


def _parse_document(body: str, *, source: str, index: int, total: int,
                    first_line: int) -> list[Document]:
    """One YAML document: one object, or each item of a `kind: List`
    (what `skiff get -o yaml` prints, so its output can be applied again)."""
    def fail(line: int | None, message: str) -> list[Document]:
        error = ManifestError(source, index, total, line, "", message)
        return [Document(source, index, total, first_line, errors=(error,))]

    loader = _BoundedLoader(body)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = first_line + mark.line if mark else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        return fail(line, f"invalid YAML: {problem}")
    except yaml.YAMLError as exc:
        return fail(first_line, f"invalid YAML: {exc}")
    finally:
        loader.dispose()
    budget = loader.nodes + MAX_ALIASED_VALUES
    if root is None or _is_null(root) or (isinstance(root, yaml.MappingNode) and not root.value):
        return fail(first_line + (root.start_mark.line if root else 0), "empty document")
    if not isinstance(root, yaml.MappingNode):
        return fail(first_line + root.start_mark.line,
                    f"expected an object with apiVersion and kind, got {_describe(root)}")
    if _scalar_text(_child(root, "kind")) == "List":
        items = _child(root, "items")
        if not isinstance(items, yaml.SequenceNode):
            line = first_line + (items or root).start_mark.line
            return [Document(source, index, total, first_line, errors=(ManifestError(
                source, index, total, line, "items", "a List needs a list of items"),))]
        return [_parse_object(item, source=source, index=index, total=total, first_line=first_line,
                              prefix=f"items[{i}]", budget=budget) for i, item in enumerate(items.value)]
    return [_parse_object(root, source=source, index=index, total=total, first_line=first_line, prefix="",
                          budget=budget)]


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader's composer with the nesting bounded (MAX_DEPTH), the error
    marked where the limit is crossed; `nodes` counts the nodes written out
    (an alias is not one), for the walk's budget."""

    _depth = 0
    nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        self.nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _parse_object(root: yaml.Node, *, source: str, index: int, total: int, first_line: int,
                  prefix: str, budget: int) -> Document:
    """One object's node tree: walked, parsed, validated."""
    walker = _Walker(line_offset=first_line, budget=budget)
    doc_line = walker.line(root)
    errors: list[ManifestError] = []

    def add(line: int | None, path: str, message: str) -> None:
        errors.append(ManifestError(source, index, total, line, _prefixed(prefix, path), message))

    if not isinstance(root, yaml.MappingNode) or not root.value:
        add(doc_line, "", f"expected an object with apiVersion and kind, got {_describe(root)}")
        return Document(source, index, total, doc_line, errors=tuple(errors), prefix=prefix)
    top = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
    kind_name = _scalar_text(top.get("kind"))
    name = _scalar_text(_child(top.get("metadata"), "name"))

    def result(obj: Message | None) -> Document:
        return Document(source, index, total, doc_line, kind_name, name, obj, tuple(errors), walker.lines,
                        prefix=prefix)

    kind_node, version_node = top.get("kind"), top.get("apiVersion")
    if kind_node is not None and not _is_string(kind_node):
        add(walker.line(kind_node), "kind", f"expected a string such as Pod, got {_describe(kind_node)}")
        return result(None)
    if not kind_name:
        add(walker.line(kind_node) if kind_node else doc_line, "kind", "required: the kind of object (e.g. Pod)")
        return result(None)
    try:
        kind = kinds.kind_named(kind_name)
    except kinds.UnknownKind as exc:
        add(walker.line(kind_node), "kind", str(exc))
        return result(None)
    version = _scalar_text(version_node)
    if version_node is not None and not _is_string(version_node):
        pass  # the walk reports the wrong type, once
    elif not version:
        add(walker.line(version_node) if version_node else doc_line, "apiVersion",
            f"required: {kind.name} is served as apiVersion {kind.api_version!r}")
    elif version != kind.api_version:
        add(walker.line(version_node), "apiVersion",
            f"{version!r} is not served for kind {kind.name}; use {kind.api_version!r}")

    try:
        data = walker.message(root, kind.message.DESCRIPTOR, "")
    except _TooManyValues as exc:
        add(walker.line(exc.node), "", f"the document expands to more than {budget} values through YAML "
                                       f"aliases (excessive aliasing, as Kubernetes refuses it)")
        return result(None)
    obj = kind.message()
    try:
        json_format.ParseDict(data or {}, obj)
    except json_format.ParseError as exc:  # the walk should have caught it; keep the message anyway
        if not walker.errors:
            add(doc_line, "", str(exc))
        return result(None)
    # The kind's must-haves are reported beside the walk's errors (a missing
    # image with a misspelt key); its other rules only once the walk is clean.
    required = [(p, m, None) for p, m in _required(kind, data or {})]
    required += [(e.path, e.message, None) for e in kind.strategy.required(obj)]
    # A field the walk refused (a list for a name) is not also "required".
    reported = [p for p, _, _ in walker.errors]
    required = [r for r in required if not any(r[0] == p or r[0].startswith((p + ".", p + "["))
                                               for p in reported)]
    for path, message, line in walker.errors + required:
        add(line or walker.line_of(path, default=doc_line), path, message)
    if errors:
        return result(None)
    for path, message in _semantic_errors(obj):
        add(walker.line_of(path, default=doc_line), path, message)
    return result(None if errors else obj)


def _prefixed(prefix: str, path: str) -> str:
    if not prefix:
        return path
    return f"{prefix}.{path}" if path else prefix


def _required(kind: kinds.Kind, data: dict[str, Any]) -> list[tuple[str, str]]:
    """Structural must-haves of every kind, checked here so they are reported
    beside the walk's own errors (a kind's are in its strategy)."""
    errors: list[tuple[str, str]] = []
    meta = data.get("metadata") or {}
    if not meta.get("name") and not meta.get("generateName"):
        errors.append(("metadata.name", "required: every object needs a name"))
    return errors


def _semantic_errors(obj: Message) -> list[tuple[str, str]]:
    """The kind's validation (its strategy), the checks the API server also runs."""
    return [(e.path, e.message) for e in kinds.validate(obj)]


class _TooManyValues(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


class _Walker:
    """Walks a yaml node tree against a message descriptor, producing the dict
    for ParseDict, the errors found, and a map from field path to line."""

    def __init__(self, *, line_offset: int, budget: int) -> None:
        self.offset = line_offset
        self.budget = budget   # values the walk may visit: the document's own, plus some aliased
        self.errors: list[tuple[str, str, int | None]] = []  # path, message, line
        self.lines: dict[str, int] = {}

    def line(self, node: yaml.Node) -> int:
        return self.offset + node.start_mark.line

    def line_of(self, path: str, *, default: int) -> int:
        return _line_of(self.lines, path, default=default)

    def error(self, path: str, node: yaml.Node, message: str) -> None:
        self.lines.setdefault(path, self.line(node))
        self.errors.append((path, message, self.line(node)))

    def message(self, node: yaml.Node, desc: Descriptor, path: str) -> dict[str, Any] | None:
        if not isinstance(node, yaml.MappingNode):
            self.error(path, node, f"expected an object, got {_describe(node)}")
            return None
        by_json = {f.json_name: f for f in desc.fields}
        out: dict[str, Any] = {}
        for key, value in _merged(node):
            if not isinstance(key, yaml.ScalarNode) or key.tag != _TAG + "str":
                self.error(path, key, f"field names must be strings, got {_describe(key)}")
                continue
            child = _join(path, key.value)
            if child in self.lines:
                self.error(child, key, "duplicate field")
                continue
            self.lines[child] = self.line(key)
            f = by_json.get(key.value)
            if f is None:
                self.errors.append((child, _unknown_field(key.value, desc, by_json), self.line(key)))
                continue
            converted = self.field(value, f, child)
            if converted is not None:
                out[key.value] = converted
        return out

    def tag_ok(self, node: yaml.Node, path: str) -> bool:
        """A value with an application tag (`!foo`, `!!binary`, `!!set`) is
        reported by its tag: Kubernetes' manifests are plain YAML."""
        if node.tag in _KNOWN_TAGS:
            return True
        tag = "!!" + node.tag[len(_TAG):] if node.tag.startswith(_TAG) else node.tag
        self.error(path, node, f"the YAML tag {tag} is not supported: write the value without it")
        return False

    def field(self, node: yaml.Node, f: FieldDescriptor, path: str) -> Any:
        if _is_null(node) or not self.tag_ok(node, path):
            return None
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            return self.map(node, f, path)
        if f.is_repeated:
            if not isinstance(node, yaml.SequenceNode):
                self.error(path, node, f"expected a list, got {_describe(node)}")
                return None
            items = []
            for i, item in enumerate(node.value):
                item_path = f"{path}[{i}]"
                self.lines.setdefault(item_path, self.line(item))
                if _is_null(item):
                    self.error(item_path, item, "list items must not be null")
                    continue
                value = self.single(item, f, item_path)
                if value is not None:
                    items.append(value)
            return items
        return self.single(node, f, path)

    def map(self, node: yaml.Node, f: FieldDescriptor, path: str) -> dict[str, Any] | None:
        if not isinstance(node, yaml.MappingNode):
            self.error(path, node, f"expected an object of key: value pairs, got {_describe(node)}")
            return None
        value_field = f.message_type.fields_by_name["value"]
        quantities = (f.containing_type.full_name, f.name) in _QUANTITY_FIELDS
        out: dict[str, Any] = {}
        for key, value in _merged(node):
            if not isinstance(key, yaml.ScalarNode):
                self.error(path, key, f"keys must be strings, got {_describe(key)}")
                continue
            child = _join(path, key.value)
            if child in self.lines:
                self.error(child, key, "duplicate key")
                continue
            self.lines[child] = self.line(key)
            if quantities:
                converted = self.quantity(value, child)
            else:
                converted = None if _is_null(value) else self.single(value, value_field, child)
            if converted is not None:
                out[key.value] = converted
        return out

    def quantity(self, node: yaml.Node, path: str) -> str | None:
        if not self.tag_ok(node, path):
            return None
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (_TAG + "str", _TAG + "int", _TAG + "float"):
            self.error(path, node, f"expected a quantity such as 500m, 0.5, 128Mi or 1G, got {_describe(node)}")
            return None
        try:
            parse_quantity(node.value)
        except QuantityError as exc:
            self.error(path, node, str(exc))
            return None
        return node.value

    def timestamp(self, node: yaml.Node, path: str) -> str | None:
        """RFC 3339 text as ParseDict wants it; YAML's own timestamps (a date,
        a space for the T) are converted, a bad one is reported here with its path."""
        expected = "expected a timestamp (RFC 3339, e.g. 2024-05-01T12:00:00Z)"
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (_TAG + "str", _TAG + "timestamp"):
            self.error(path, node, f"{expected}, got {_describe(node)}")
            return None
        text = node.value
        if node.tag == _TAG + "timestamp":
            try:
                value = _construct(node)
            except (ValueError, OverflowError) as exc:
                self.error(path, node, f"{expected}: {exc}")
                return None
            if not isinstance(value, datetime.datetime):
                value = datetime.datetime(value.year, value.month, value.day)
            if value.tzinfo is not None:
                value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
            text = value.isoformat() + "Z"
        try:
            timestamp_pb2.Timestamp().FromJsonString(text)
        except ValueError as exc:
            self.error(path, node, f"{expected}, got {_describe(node)}: {exc}")
            return None
        return text

    def single(self, node: yaml.Node, f: FieldDescriptor, path: str) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _TooManyValues(node)
        if not self.tag_ok(node, path):
            return None
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if f.message_type.full_name == _TIMESTAMP:
                return self.timestamp(node, path)
            return self.message(node, f.message_type, path)
        if not isinstance(node, yaml.ScalarNode):
            self.error(path, node, f"expected {_expected(f)}, got {_describe(node)}")
            return None
        tag = node.tag
        if f.type == FieldDescriptor.TYPE_BYTES and tag == _TAG + "str":
            # bytes are base64 in YAML and JSON (a Secret's data), as Kubernetes reads them
            try:
                base64.b64decode(node.value, validate=True)
            except (binascii.Error, ValueError) as exc:   # ValueError: not ASCII
                self.error(path, node, f"illegal base64 data: {exc}")
                return None
            return node.value
        if f.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
            if tag in (_TAG + "str", _TAG + "timestamp"):
                return node.value
            if tag == _TAG + "int" and (f.containing_type.full_name, f.name) in _INT_OR_STRING_FIELDS:
                return node.value
            self.error(path, node, f"expected a string, got {_describe(node)}; quote it: \"{node.value}\"")
            return None
        if f.type in _INT_TYPES:
            if tag != _TAG + "int":
                self.error(path, node, f"expected an integer, got {_describe(node)}")
                return None
            value = _construct(node)
            low, high = _INT_TYPES[f.type]
            if not low <= value <= high:
                self.error(path, node, f"{value} is out of range ({low} to {high})")
                return None
            return value
        if f.type == FieldDescriptor.TYPE_BOOL:
            if tag != _TAG + "bool":
                self.error(path, node, f"expected true or false, got {_describe(node)}")
                return None
            return _construct(node)
        if f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            if tag not in (_TAG + "int", _TAG + "float"):
                self.error(path, node, f"expected a number, got {_describe(node)}")
                return None
            return float(_construct(node))
        if f.type == FieldDescriptor.TYPE_ENUM:
            names = [v.name for v in f.enum_type.values]
            if node.value not in names:
                self.error(path, node, f"expected one of {', '.join(names)}, got {_describe(node)}")
                return None
            return node.value
        self.error(path, node, f"unsupported field type {f.type}")  # pragma: no cover
        return None


def _line_of(lines: dict[str, int], path: str, *, default: int) -> int:
    while path:
        if path in lines:
            return lines[path]
        # Drop the last segment: "[0]", "[key]" or ".name".
        path = re.sub(r"(\[[^\[\]]*\]|\.?[^.\[\]]+)$", "", path)
    return default


def _merged(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
    """The mapping's pairs with YAML merge keys (`<<: *defaults`) resolved, as
    Kubernetes' YAML reader resolves them."""
    if not any(k.tag == _TAG + "merge" for k, _ in node.value):
        return node.value
    own = [(k, v) for k, v in node.value if k.tag != _TAG + "merge"]
    try:
        yaml.SafeLoader("").flatten_mapping(node)
    except yaml.MarkedYAMLError:
        return node.value  # a malformed merge: the walk reports "<<" as a key that is not a field name
    # Merged pairs come first and yield to the mapping's own keys (and earlier
    # merges to later ones); a key repeated among the own pairs stays an error.
    own_keys = {k.value for k, _ in own}
    merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for k, v in node.value[:len(node.value) - len(own)]:
        if k.value not in own_keys:
            merged[k.value] = (k, v)
    return [*merged.values(), *own]


def _construct(node: yaml.ScalarNode) -> Any:
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _unknown_field(name: str, desc: Descriptor, by_json: dict[str, FieldDescriptor]) -> str:
    message = f"unknown field {name!r} in {desc.name}"
    close = difflib.get_close_matches(name, by_json, n=1, cutoff=0.6)
    if not close:  # `container_port` for `containerPort`, `Image` for `image`
        close = [j for j, f in by_json.items() if name in (f.name,) or name.lower() == j.lower()][:1]
    return f"{message}; did you mean {close[0]!r}?" if close else message


def _expected(f: FieldDescriptor) -> str:
    if f.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return "a string"
    if f.type in _INT_TYPES:
        return "an integer"
    if f.type == FieldDescriptor.TYPE_BOOL:
        return "true or false"
    return "a number" if f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT) else "a value"


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "an object"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    return {
        _TAG + "int": f"the integer {text}", _TAG + "float": f"the number {text}",
        _TAG + "bool": f"the boolean {text}", _TAG + "null": "null",
        _TAG + "timestamp": f"the timestamp {text}",
    }.get(node.tag, f"the string \"{text}\"")


def _is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "null")


def _is_string(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "str"


def _scalar_text(node: yaml.Node | None) -> str:
    return node.value if isinstance(node, yaml.ScalarNode) and not _is_null(node) else ""


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _join(path: str, key: str) -> str:
    if not _PLAIN_KEY.match(key):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key
