"""meta.k8s.io/v1 Table: the server-side printing `kubectl get` asks for
(`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`).

The columns are the kind's own (Strategy.columns/row), the ones `skiff get`
prints: the wide set with the columns only `-o wide` shows at priority 1, so
kubectl prints exactly what `skiff get` and `skiff get -o wide` print.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Sequence

from google.protobuf.message import Message

from skiff.api import kinds, printers

TABLE_MEDIA = "as=table"


def wants_table(accept: str) -> bool:
    """Whether the client's first acceptable type is a meta.k8s.io Table."""
    for part in accept.split(","):
        params = {p.strip().lower() for p in part.split(";")[1:]}
        if TABLE_MEDIA in params and "g=meta.k8s.io" in params:
            return True
    return False


def _columns(kind: kinds.Kind) -> list[dict[str, Any]]:
    narrow = kind.strategy.columns(wide=False)
    out = []
    for name in kind.strategy.columns(wide=True):
        out.append({"name": name, "type": "string",
                    "format": "name" if name == "NAME" else "", "description": name.lower(),
                    "priority": 0 if name in narrow else 1})
    return out


def partial_metadata(obj: Message) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": printers.to_dict(obj).get("metadata", {})}


def table(objs: Sequence[Message], *, kind: kinds.Kind, resource_version: str = "", continue_token: str = "",
          include_object: str = "Metadata", now: datetime | None = None, headers: bool = True) -> dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": kind.strategy.row(obj, wide=True, now=now)}
        if include_object == "Object":
            row["object"] = printers.to_dict(obj)
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    metadata = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": _columns(kind) if headers else [], "rows": rows}
