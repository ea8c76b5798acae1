"""The pieces `describe` text is built of, kubectl-like: `Key:  value` lines
aligned per block, timestamps as kubectl prints them, the events table.

Kind files compose their `describe` sections from these (skiff/api/kinds/);
the generic describer (any kind without its own) prints the header and the
object's other fields.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.message import Message

from skiff.api import humanize


class Text:
    """Lines of `Key:  value` with values aligned per indentation block."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def kv(self, indent: int, pairs: list[tuple[str, Any]], *, width: int = 0) -> None:
        width = max([len(k) for k, _ in pairs] + [width - 1]) + 2
        for key, value in pairs:
            self.lines.append(" " * indent + f"{key}:".ljust(width + 1) + ("" if value is None else str(value)))

    def line(self, text: str) -> None:
        self.lines.append(text)

    def multiline(self, key: str, value: str, *, width: int = 18) -> None:
        """A top-level `Key:` whose value may span lines, aligned at `width`."""
        first, *rest = value.splitlines() or [""]
        self.line(f"{key}:".ljust(width) + first)
        for line in rest:
            self.line(" " * width + line)

    def table(self, rows: list[list[str]], *, indent: int = 2) -> None:
        self.lines.extend(" " * indent + line for line in humanize.format_table(rows).splitlines())

    def __str__(self) -> str:
        return "\n".join(line.rstrip() for line in self.lines) + "\n"


def ts(value: Any) -> str:
    if not value.seconds and not value.nanos:
        return "<unset>"
    return value.ToDatetime(tzinfo=timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")


# kubectl's describe never prints apply's copy of the manifest (it would show a Secret's values).
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def map_text(m: Any) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted(m.items()) if k != LAST_APPLIED) or "<none>"


def header(text: Text, obj: Message) -> None:
    """Name, Namespace (namespaced kinds), Labels, Annotations."""
    text.multiline("Name", obj.metadata.name)
    if obj.metadata.namespace:
        text.multiline("Namespace", obj.metadata.namespace)
    text.multiline("Labels", map_text(obj.metadata.labels))
    text.multiline("Annotations", map_text(obj.metadata.annotations))


def fields(text: Text, obj: Message) -> None:
    """Every field but metadata, apiVersion and kind, as indented YAML with capitalised top keys."""
    data = json_format.MessageToDict(obj)
    for key, value in data.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        title = key[:1].upper() + key[1:]
        if isinstance(value, (dict, list)):
            text.line(f"{title}:")
            dumped = yaml.safe_dump(value, default_flow_style=False, sort_keys=False)
            text.lines.extend("  " + line for line in dumped.splitlines())
        else:
            text.multiline(title, str(value))


def events(text: Text, items: list[Message], *, now: datetime) -> None:
    if not items:
        text.line("Events:  <none>")
        return
    text.line("Events:")
    rows = [["Type", "Reason", "Age", "From", "Message"], ["----", "------", "----", "----", "-------"]]
    for e in sorted(items, key=lambda e: (e.last_timestamp.seconds, e.last_timestamp.nanos)):
        age = humanize.age(e.last_timestamp if e.last_timestamp.seconds else e.first_timestamp, now=now)
        if e.count > 1:
            age += f" (x{e.count})"
        rows.append([e.type, e.reason, age, e.source.component, e.message])
    text.table(rows)
