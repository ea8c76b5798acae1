"""Server-side apply (`PATCH` with `application/apply-patch+yaml`), with field
managers and conflicts, as Kubernetes' own in its essentials.

Each field manager's last applied configuration is kept on the object, in the
annotation MANAGERS_ANNOTATION (Skiff's objects have no managedFields). An
apply by manager M with configuration C:

    conflicts  a field C sets to a value unlike the live one, that another
               manager's configuration also sets: 409 Conflict naming the
               manager and the field (kubectl prints them), unless force=true,
               which takes the field over (it leaves the other configuration)
    result     merge.three_way(M's previous configuration, C, live object):
               what M dropped goes, what others set stays, what C says wins;
               then the other managers' configurations merged back over it, so
               a field M dropped that another manager sets keeps that value
    write      Registry.create or Registry.update with CAS on the live
               resourceVersion: validation, admission and watch are the registry's

Fields are compared as paths to leaves, lists keyed as merge.py keys them
(containers by name ...); other lists are one field. Updates by PUT and
other patches do not take ownership (Kubernetes records them as managers
too): only appliers conflict with each other.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Iterator

from skiff.api import merge

MANAGERS_ANNOTATION = "skiff.io/apply-managers"
Path = tuple[str, ...]
_EVERYONES = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}


class ApplyConflict(Exception):
    def __init__(self, conflicts: list[tuple[str, str]]) -> None:
        self.conflicts = conflicts   # (manager, field path as Kubernetes prints it)
        lines = "\n".join(f'- conflict with "{m}": {f}' for m, f in conflicts)
        super().__init__(f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: "
                         + (lines[2:] if len(conflicts) == 1 else "\n" + lines))


def _leaves(doc: Any, path: Path = (), names: Path = ()) -> Iterator[tuple[Path, Any]]:
    """(path, value) for every leaf: keyed list items as "[key=value]" steps."""
    if isinstance(doc, dict) and doc:
        for key, value in doc.items():
            if path == ("metadata", "annotations") and key == MANAGERS_ANNOTATION:
                continue
            yield from _leaves(value, path + (key,), names + (key,))
        return
    key = merge.merge_key(names) if isinstance(doc, list) else None
    if key and doc and all(isinstance(i, dict) and key in i for i in doc):
        for item in doc:
            yield from _leaves(item, path + (f"[{key}={item[key]}]",), names)
        return
    if path not in _EVERYONES:
        yield path, doc


def _printed(path: Path) -> str:
    return "".join(step if step.startswith("[") else f".{step}" for step in path)


def _without(doc: Any, path: Path) -> Any:
    """`doc` (a configuration) without the field at `path`."""
    if not path or not isinstance(doc, (dict, list)):
        return doc
    step, rest = path[0], path[1:]
    if isinstance(doc, list):
        key, _, value = step[1:-1].partition("=")
        out = []
        for item in doc:
            if isinstance(item, dict) and str(item.get(key)) == value:
                item = _without(item, rest) if rest else None
                if item is None or set(item) <= {key}:
                    continue
            out.append(item)
        return out
    doc = dict(doc)
    if step in doc:
        if rest:
            doc[step] = _without(doc[step], rest)
        if not rest or doc[step] in ({}, []):   # nothing of it left: the field itself goes
            del doc[step]
    return doc


def managers(live: dict[str, Any] | None) -> dict[str, Any]:
    text = ((live or {}).get("metadata", {}).get("annotations") or {}).get(MANAGERS_ANNOTATION, "")
    try:
        found = json.loads(text) if text else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def apply(live: dict[str, Any] | None, config: dict[str, Any], *, manager: str, force: bool) -> dict[str, Any]:
    """The object to write for `manager` applying `config` over `live` (None: it
    does not exist yet); ApplyConflict unless `force`."""
    owners = managers(live)
    mine = dict(_leaves(config))
    current = dict(_leaves(live)) if live is not None else {}
    conflicts: list[tuple[str, Path]] = []
    for other, their_config in owners.items():
        if other == manager:
            continue
        for path in dict(_leaves(their_config)):
            if path in mine and path in current and current[path] != mine[path]:
                conflicts.append((other, path))
    if conflicts and not force:
        raise ApplyConflict([(m, _printed(p)) for m, p in conflicts])
    for other, path in conflicts:   # forced: the field is this manager's now
        owners[other] = _without(owners[other], path)
    previous = owners.get(manager)
    owners[manager] = config
    result = merge.three_way(previous, config, live) if live is not None else copy.deepcopy(config)
    for other, their_config in owners.items():
        if other != manager:   # what M dropped, others may still set (three_way drops a whole map)
            result = merge.strategic_merge_patch(result, their_config)
    annotations = result.setdefault("metadata", {}).setdefault("annotations", {}) or {}
    annotations[MANAGERS_ANNOTATION] = json.dumps(owners, separators=(",", ":"), sort_keys=True)
    result["metadata"]["annotations"] = annotations
    return result
