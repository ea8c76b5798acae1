"""Merging objects the way kubectl does, on plain dicts as Kubernetes prints
them (camelCase keys, lists of dicts): pure functions, no API calls.

- `three_way(original, modified, current)`: client-side apply. `original` is
  what the last apply sent (the `kubectl.kubernetes.io/last-applied-configuration`
  annotation), `modified` the manifest now, `current` the live object. A field
  in original but not in modified was removed by the user and goes; a field
  only in current was set by someone else (status, a scaled replicas, a
  server default) and stays; what modified says wins.
- `strategic_merge_patch(current, patch)`: `patch --type strategic`. Maps merge,
  `null` deletes, keyed lists merge item by item (`$patch: delete` on an item
  removes it, `$patch: replace` replaces the list), other lists are replaced.
- `json_merge_patch(target, patch)`: RFC 7386 (`patch --type merge`): lists
  are always replaced.
- `json_patch(doc, operations)`: RFC 6902 (`patch --type json`).

Lists of objects are keyed as Kubernetes' API types declare them with
`patchMergeKey` (containers by name, ports by containerPort, env by name ...);
`merge_key(path)` holds that table, looked up by the list's field name and,
where the same name means different things, its parent's.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Sequence

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# Field name -> patchMergeKey, from Kubernetes' core/v1 and meta/v1 types.
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "conditions": "type", "imagePullSecrets": "name", "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey", "ownerReferences": "uid", "readinessGates": "conditionType",
    "resourceClaims": "name", "addresses": "type", "taints": "key",
}
_CONTAINER_LISTS = {"containers", "initContainers", "ephemeralContainers"}


class PatchError(ValueError):
    """A patch that cannot be applied (a failed `test`, a missing path, a bad operation)."""


def merge_key(path: Sequence[str]) -> str | None:
    """The key that identifies the items of the list at `path` (field names
    from the object's root, list indexes left out), or None: replace it whole."""
    if not path:
        return None
    name = path[-1]
    if name == "ports":
        # A container's ports are keyed by containerPort; a Service's by port.
        return "containerPort" if len(path) > 1 and path[-2] in _CONTAINER_LISTS else "port"
    return _MERGE_KEYS.get(name)


def _keyed(items: Any, key: str | None) -> bool:
    return (key is not None and isinstance(items, list)
            and all(isinstance(i, dict) and key in i for i in items))


# ---------------------------------------------------------------- three-way (apply)

def three_way(original: dict[str, Any] | None, modified: dict[str, Any], current: dict[str, Any],
              *, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """The object apply writes: `current` with the user's changes from
    `original` to `modified` applied, everything else of current kept."""
    original = original if isinstance(original, dict) else {}
    result = copy.deepcopy(current)
    for key in original:
        if key not in modified:
            result.pop(key, None)
    for key, mval in modified.items():
        cval, oval = current.get(key), original.get(key)
        here = path + (key,)
        if mval is None:
            result.pop(key, None)
        elif isinstance(mval, dict) and isinstance(cval, dict):
            result[key] = three_way(oval, mval, cval, path=here)
        elif _keyed(mval, merge_key(here)) and _keyed(cval, merge_key(here)):
            result[key] = _three_way_list(oval if _keyed(oval, merge_key(here)) else [], mval, cval,
                                          merge_key(here), here)
        else:
            result[key] = copy.deepcopy(mval)
    return result


def _three_way_list(original: list[dict], modified: list[dict], current: list[dict], key: str,
                    path: tuple[str, ...]) -> list[dict]:
    orig = {i[key]: i for i in original}
    cur = {i[key]: i for i in current}
    mine = {i[key] for i in modified}
    out = [three_way(orig.get(i[key]), i, cur[i[key]], path=path) if i[key] in cur else copy.deepcopy(i)
           for i in modified]
    # Items the user never wrote (another writer's) stay; the ones they removed go.
    out += [copy.deepcopy(i) for i in current if i[key] not in mine and i[key] not in orig]
    return out


# ---------------------------------------------------------------- strategic merge patch

def strategic_merge_patch(current: dict[str, Any], patch: dict[str, Any], *,
                          path: tuple[str, ...] = ()) -> dict[str, Any]:
    """`current` with `patch` applied as Kubernetes' strategic merge patch."""
    if not isinstance(patch, dict):
        raise PatchError(f"{'.'.join(path) or 'patch'}: expected an object, got {json.dumps(patch)}")
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(current) if isinstance(current, dict) else {}
    for key, pval in patch.items():
        if key.startswith("$"):
            continue
        here = path + (key,)
        cval = result.get(key)
        if pval is None:
            result.pop(key, None)
        elif isinstance(pval, dict):
            result[key] = strategic_merge_patch(cval if isinstance(cval, dict) else {}, pval, path=here)
        elif isinstance(pval, list) and merge_key(here) and all(isinstance(i, dict) for i in pval):
            result[key] = _patch_list(cval if isinstance(cval, list) else [], pval, merge_key(here), here)
        else:
            result[key] = copy.deepcopy(pval)
    return result


def _patch_list(current: list, patch: list[dict], key: str, path: tuple[str, ...]) -> list:
    if any(i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy({k: v for k, v in i.items() if k != "$patch"})
                for i in patch if i.get("$patch") != "replace"]
    out = copy.deepcopy(current)
    for item in patch:
        if key not in item:
            raise PatchError(f"{'.'.join(path)}: an item of the patch lacks its merge key {key!r}")
        at = next((n for n, c in enumerate(out) if isinstance(c, dict) and c.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if at is not None:
                del out[at]
        elif at is None:
            out.append(strategic_merge_patch({}, item, path=path))
        else:
            out[at] = strategic_merge_patch(out[at], item, path=path)
    return out


# ---------------------------------------------------------------- RFC 7386

def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, `null` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------- RFC 6902

def _pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}: must start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(container: list, token: str, pointer: str, *, adding: bool) -> int:
    if adding and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"invalid array index {token!r} in {pointer!r}")
    index = int(token)
    if index > len(container) or (index == len(container) and not adding):
        raise PatchError(f"index {index} out of range in {pointer!r}")
    return index


def _parent(doc: Any, pointer: str) -> tuple[Any, str]:
    tokens = _pointer(pointer)
    if not tokens:
        raise PatchError("this operation needs a path below the root")
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, pointer, adding=False)]
        else:
            raise PatchError(f"path {pointer!r} does not exist")
    return node, tokens[-1]


def _get(doc: Any, pointer: str) -> Any:
    node = doc
    for token in _pointer(pointer):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, pointer, adding=False)]
        else:
            raise PatchError(f"path {pointer!r} does not exist")
    return node


def _remove(doc: Any, pointer: str) -> Any:
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"path {pointer!r} does not exist")
        return parent.pop(token)
    if isinstance(parent, list):
        return parent.pop(_index(parent, token, pointer, adding=False))
    raise PatchError(f"path {pointer!r} does not exist")


def _add(doc: Any, pointer: str, value: Any) -> Any:
    if pointer == "":
        return value
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, pointer, adding=True), value)
    else:
        raise PatchError(f"path {pointer!r} does not exist")
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902: apply the operations in order to a copy of `doc`."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = copy.deepcopy(doc)
    for n, op in enumerate(operations):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"operation {n}: needs 'op' and 'path'")
        kind, pointer = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {n} ({kind}): needs 'value'")
        if kind in ("move", "copy") and "from" not in op:
            raise PatchError(f"operation {n} ({kind}): needs 'from'")
        if kind == "add":
            doc = _add(doc, pointer, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, pointer)
        elif kind == "replace":
            if pointer == "":
                doc = copy.deepcopy(op["value"])
            else:
                _remove(doc, pointer)
                doc = _add(doc, pointer, copy.deepcopy(op["value"]))
        elif kind == "move":
            if pointer.startswith(op["from"] + "/"):
                raise PatchError(f"operation {n} (move): cannot move {op['from']!r} into itself")
            doc = _add(doc, pointer, _remove(doc, op["from"]))
        elif kind == "copy":
            doc = _add(doc, pointer, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, pointer) != op["value"]:
                raise PatchError(f"operation {n} (test): {pointer!r} is not {json.dumps(op['value'])}")
        else:
            raise PatchError(f"operation {n}: unknown op {kind!r}")
    return doc


# ---------------------------------------------------------------- apply's bookkeeping

def last_applied(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The configuration the last apply sent, from the object's annotation (None if absent or unreadable)."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def with_last_applied(modified: dict[str, Any]) -> dict[str, Any]:
    """`modified` carrying itself (without the annotation) in the annotation,
    as kubectl writes it: compact JSON, keys sorted, a trailing newline."""
    plain = copy.deepcopy(modified)
    annotations = (plain.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)
        if not annotations:
            del plain["metadata"]["annotations"]
    out = copy.deepcopy(modified)
    out.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = \
        json.dumps(plain, separators=(",", ":"), sort_keys=True) + "\n"
    return out


def applied(modified: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The object `kubectl apply` of `modified` makes of the live `current`."""
    return three_way(last_applied(current), with_last_applied(modified), current)
