"""Client-side apply, as kubectl does it: shared by `skiff apply` and `skiff diff`.

    GET the live object ── absent ──> CREATE it, the manifest in its
        │                             last-applied-configuration annotation
        └── present ──> merge.applied(manifest, live) (three-way: the last
                        applied configuration is the original) ──> same as
                        live? "unchanged" : UPDATE with live's resourceVersion
                        (compare-and-swap; on Conflict GET and merge again)

Dry runs: "client" computes the result and sends nothing; "server" sends the
merged object through the API's Apply with dry_run, so the server validates
and defaults it but stores nothing.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from skiff.api import kinds, merge
from skiff.api.convert import ConversionError, to_object
from skiff.api.printers import to_dict
from skiff.cli._common import DEFAULT_NAMESPACE, CliError
from skiff.client import ApiClient, AlreadyExists, Conflict, NotFound

_ATTEMPTS = 5


@dataclass(frozen=True)
class Outcome:
    obj: Message          # as stored (or as it would be, on a dry run)
    result: str           # "created", "configured" or "unchanged"


def key_of(obj: Message) -> tuple[kinds.Kind, str, str]:
    kind = kinds.kind_of(obj)
    namespace = (obj.metadata.namespace or DEFAULT_NAMESPACE) if kind.namespaced else ""
    return kind, namespace, obj.metadata.name


async def live_object(client: ApiClient, obj: Message) -> Message | None:
    kind, namespace, name = key_of(obj)
    try:
        return await client.get(kind.name, name, namespace)
    except NotFound:
        return None


def planned(manifest_obj: Message, live: Message | None) -> Message:
    """What apply would write for `manifest_obj` given the live object (None: absent)."""
    modified = to_dict(manifest_obj)
    if live is None:
        return _typed(merge.with_last_applied(modified), manifest_obj)
    merged = _typed(merge.applied(modified, to_dict(live)), manifest_obj)
    merged.metadata.resource_version = live.metadata.resource_version
    return merged


def _typed(data: dict[str, Any], manifest_obj: Message) -> Message:
    try:
        return to_object(data)
    except ConversionError as exc:
        raise CliError(f"{kinds.kind_of(manifest_obj).name.lower()}/{manifest_obj.metadata.name}: "
                       f"the merged object is invalid: {exc}") from None


async def apply_one(client: ApiClient, manifest_obj: Message, *, dry_run: str = "none") -> Outcome:
    """Apply one object; dry_run is "none", "client" or "server"."""
    kind, namespace, name = key_of(manifest_obj)
    for _ in range(_ATTEMPTS):
        live = await live_object(client, manifest_obj)
        target = planned(manifest_obj, live)
        if live is None:
            if dry_run == "client":
                return Outcome(target, "created")
            if dry_run == "server":
                stored, result = await client.apply(target, dry_run=True)
                return Outcome(stored, result)
            try:
                return Outcome(await client.create(target), "created")
            except AlreadyExists:
                continue
        if live.metadata.annotations.get(merge.LAST_APPLIED) is None:
            print(f"Warning: resource {kind.resource}/{name} is missing the {merge.LAST_APPLIED} annotation "
                  "which is required by skiff apply. skiff apply should only be used on resources created "
                  "declaratively by skiff apply. The missing annotation will be patched automatically.",
                  file=sys.stderr)
        if target == live:
            return Outcome(live, "unchanged")
        if dry_run == "client":
            return Outcome(target, "configured")
        if dry_run == "server":
            stored, result = await client.apply(target, dry_run=True)
            return Outcome(stored, result)
        try:
            return Outcome(await client.update(target), "configured")
        except (Conflict, NotFound):
            continue  # someone wrote in between: read and merge again
    raise Conflict(f'Operation cannot be fulfilled on {kind.resource} "{name}": the object kept changing '
                   f"while it was applied; try again")


async def prune(client: ApiClient, applied: list[Message], *, selector: str, dry_run: str, suffix: str) -> None:
    """Delete what an earlier apply created and the manifests no longer hold:
    objects of the applied kinds, in the applied namespaces, matching
    `selector` and carrying the last-applied annotation (kubectl's rule)."""
    keep = {(k.name, ns, name) for k, ns, name in map(key_of, applied)}
    scopes = sorted({(k.name, ns) for k, ns, _ in map(key_of, applied)})
    for kind_name, namespace in scopes:
        kind = kinds.kind_named(kind_name)
        objs, _ = await client.list(kind.name, namespace, selector)
        for obj in objs:
            name = obj.metadata.name
            if ((kind.name, namespace, name) in keep or merge.LAST_APPLIED not in obj.metadata.annotations
                    or obj.metadata.HasField("deletion_timestamp")):
                continue
            if dry_run == "none":
                try:
                    await client.delete(kind.name, name, namespace)
                except NotFound:
                    continue
            print(f"{kind.name.lower()}/{name} pruned{suffix}", flush=True)
