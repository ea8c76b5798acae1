"""Plain dicts (as Kubernetes prints objects) back into typed API objects.

`skiff.api.printers.to_dict` goes one way; `to_object` goes back through the
manifest parser, so a merged, patched or edited object is checked exactly as
a manifest is (unknown fields, wrong types, the shared validation) and its
errors name field paths.
"""
from __future__ import annotations

import json
from typing import Any

from google.protobuf.message import Message

from skiff.api import manifest


class ConversionError(ValueError):
    """The dict is not a valid object; the message lists field paths and problems,
    `errors` the same as (path, message) pairs (the REST API's Status causes)."""

    def __init__(self, message: str, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


def to_object(data: dict[str, Any], *, source: str = "<object>") -> Message:
    """The typed object for `data`, or ConversionError naming what is wrong."""
    items = manifest.parse_text(json.dumps(data), source=source)
    if len(items) != 1:
        raise ConversionError(f"{source}: expected one object, got {len(items)}")
    item = items[0]
    if isinstance(item, manifest.ManifestError):
        raise ConversionError(_without_line(item), [(item.path, item.message)])
    if item.errors or item.obj is None:
        raise ConversionError("; ".join(_without_line(e) for e in item.errors) or f"{source}: invalid object",
                              [(e.path, e.message) for e in item.errors])
    return item.obj


def _without_line(error: manifest.ManifestError) -> str:
    """The error without the (meaningless) line of the generated JSON text."""
    return f"{error.path}: {error.message}" if error.path else error.message
