"""Malformed input for the fuzz suite (issue 15), generated from a fixed seed so
a failure reproduces: manifests with one field broken each (wrong types at every
field path of a Pod, ConfigMap, Secret and Namespace, huge and deep values,
control characters, numeric extremes, YAML tags and aliases inside walked
fields), and raw API requests (garbage bytes, empty envelopes, absurd values).

A manifest is written as flow-style YAML (JSON with YAML's extras), so a broken
value is spliced in as raw YAML text: `!foo x`, `*meta`, `[[[...]]]`.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Iterator

SEED = 20261130

REJECT, MAYBE = "reject", "maybe"


@dataclass(frozen=True)
class Raw:
    """A value written as raw YAML text instead of JSON."""
    text: str


@dataclass(frozen=True)
class Case:
    kind: str
    name: str           # the name the document asks for (unless the mutation is of the name)
    path: str           # the field broken, as the manifest reader names paths
    mutation: str
    expect: str         # REJECT: must be refused; MAYBE: refused or stored, either is right
    text: str           # the YAML document
    field_error: bool   # a refusal must name a field (False: the whole document may be refused)


def bases(name: str) -> dict[str, dict[str, Any]]:
    meta = {"name": name, "labels": {"app": "fuzz"}, "annotations": {"note": "x"}}
    return {
        "Pod": {"apiVersion": "v1", "kind": "Pod", "metadata": dict(meta), "spec": {
            "schedulerName": "fuzz-no-scheduler", "restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
            "hostname": "h", "nodeSelector": {"disk": "ssd"},
            "securityContext": {"runAsUser": 1, "runAsGroup": 1, "fsGroup": 2, "supplementalGroups": [3],
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                        {"name": "h", "hostPath": {"path": "/tmp", "type": "Directory"}}],
            "containers": [{
                "name": "c", "image": "busybox:1.36", "command": ["sh", "-c"], "args": ["true"],
                "workingDir": "/", "imagePullPolicy": "IfNotPresent",
                "env": [{"name": "A", "value": "b"}],
                "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1",
                           "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
                "volumeMounts": [{"name": "v", "mountPath": "/v", "readOnly": True, "subPath": "s"}],
                "securityContext": {"runAsUser": 1000, "privileged": False,
                                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                                    "seccompProfile": {"type": "RuntimeDefault"}}}]}},
        "ConfigMap": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(meta),
                      "data": {"k": "v"}, "binaryData": {"b": "aGk="}, "immutable": False},
        "Secret": {"apiVersion": "v1", "kind": "Secret", "metadata": dict(meta), "type": "Opaque",
                   "data": {"k": "aGk="}, "stringData": {"s": "v"}},
        "Namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": dict(meta)},
    }


def render(value: Any) -> str:
    """Flow-style YAML: JSON, with Raw values spliced in as written."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return json.dumps(value)


def document(obj: dict[str, Any]) -> str:
    """A block-style top level (one line per top-level field, so lines differ)
    with anchors on apiVersion (a string) and metadata (an object) for aliases."""
    lines = []
    for key, value in obj.items():
        anchor = {"apiVersion": "&str ", "metadata": "&meta "}.get(key, "") if not isinstance(value, Raw) else ""
        lines.append(f"{key}: {anchor}{render(value)}")
    return "\n".join(lines) + "\n"


def leaf_paths(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(manifest path, value) of every field, interior ones included."""
    if isinstance(value, dict):
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else key
            yield child_path, child
            yield from leaf_paths(child, child_path)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield f"{path}[{i}]", child
            yield from leaf_paths(child, f"{path}[{i}]")


def replaced(obj: Any, path: str, new: Any) -> Any:
    """A deep copy of obj with the value at `path` replaced."""
    obj = json.loads(json.dumps(obj))
    parts = [p for p in path.replace("[", ".[").split(".") if p]
    target = obj
    for part in parts[:-1]:
        target = target[int(part[1:-1])] if part.startswith("[") else target[part]
    last = parts[-1]
    if last.startswith("["):
        target[int(last[1:-1])] = new
    else:
        target[last] = new
    return obj


QUANTITY_PARENTS = ("limits", "requests", "sizeLimit")


def _wrong_types(value: Any, path: str) -> list[tuple[str, Any, str]]:
    """(mutation, new value, expectation): a value of every other YAML type."""
    quantity = any(p in path for p in QUANTITY_PARENTS)
    out: list[tuple[str, Any, str]] = []
    if isinstance(value, (dict, list)):
        out += [("string-for-structure", "oops", REJECT), ("int-for-structure", 42, REJECT)]
        out.append(("list-for-object", [1, 2], REJECT) if isinstance(value, dict)
                   else ("object-for-list", {"a": 1}, REJECT))
    else:
        out += [("list-for-scalar", ["x"], REJECT), ("object-for-scalar", {"x": 1}, REJECT)]
        if isinstance(value, bool):
            out += [("string-for-bool", "yes", REJECT), ("int-for-bool", 1, REJECT)]
        elif isinstance(value, int):
            out += [("string-for-int", "12", REJECT), ("bool-for-int", True, REJECT), ("float-for-int", 1.5, REJECT)]
        else:
            out += [("bool-for-string", True, REJECT), ("int-for-string", 7, MAYBE if quantity else REJECT)]
    return out


def _extremes(value: Any, path: str) -> list[tuple[str, Any, str]]:
    if isinstance(value, bool) or not isinstance(value, int):
        # YAML 1.1 reads 1e999999 (no dot) as a string, 1.0e+999999 as a float (infinity)
        return [("huge-number-text", Raw("1e999999"), MAYBE),
                ("huge-float-for-string", Raw("1.0e+999999"), REJECT)] if isinstance(value, str) else []
    return [("int64-overflow", Raw("9223372036854775808"), REJECT),
            ("int64-underflow", Raw("-9223372036854775809"), REJECT),
            ("int64-max", Raw("9223372036854775807"), MAYBE), ("int32-max+1", Raw("2147483648"), MAYBE),
            ("minus-one", -1, MAYBE), ("nan", Raw(".nan"), REJECT), ("infinity", Raw("-.inf"), REJECT),
            ("hex", Raw("0x7fffffff"), MAYBE)]


_CONTROL = ["a\u0000b", "\u001b[31mred", "line\nbreak", "\u2028", "tab\there", "\u007f", "é\u200bx"]
_TAGS = [("tag-custom", "!foo x"), ("tag-binary", "!!binary aGk="), ("tag-set", "!!set {a}"),
         ("tag-python", "!!python/object/apply:os.system [\"true\"]"), ("tag-timestamp", "!!timestamp 2024-01-01")]


def manifest_cases(rng: random.Random, *, huge_paths: int = 1, deep_paths: int = 4) -> list[Case]:
    """Every field path of each kind with each applicable mutation, plus a few
    huge and deep values at paths picked by `rng`."""
    cases: list[Case] = []
    counter = iter(range(10**6))
    for kind in ("Pod", "ConfigMap", "Secret", "Namespace"):
        template = bases("NAME")[kind]
        paths = [(p, v) for p, v in leaf_paths(template) if p not in ("apiVersion", "kind")]
        picked_huge = {p for p, _ in rng.sample(paths, min(huge_paths, len(paths)))}
        picked_deep = {p for p, _ in rng.sample(paths, min(deep_paths, len(paths)))}
        for path, value in paths:
            mutations = _wrong_types(value, path) + _extremes(value, path)
            if isinstance(value, str):
                mutations += [(f"control-{i}", text, MAYBE) for i, text in enumerate(_CONTROL)]
            mutations += [(name, Raw(text), REJECT if name != "tag-timestamp" or not isinstance(value, str)
                           else MAYBE) for name, text in _TAGS]
            mutations += [("alias-string", Raw("*str"), MAYBE if isinstance(value, str) else REJECT),
                          ("alias-object", Raw("*meta"), MAYBE if isinstance(value, dict) else REJECT)]
            if path in picked_huge:
                mutations.append(("huge-string", "x" * 1_600_000, REJECT))
            if path in picked_deep:
                mutations.append(("deep", Raw("[" * 1000 + "]" * 1000), REJECT))
            for mutation, new, expect in mutations:
                name = f"fz-{kind.lower()}-{next(counter)}"
                obj = replaced(bases(name)[kind], path, new)
                cases.append(Case(kind, name, path, mutation, expect, document(obj),
                                  # a document-level refusal with its line is right for these:
                                  # nesting too deep, an alias to metadata inside metadata
                                  field_error=not (mutation == "deep" or mutation == "alias-object"
                                                   and path.startswith("metadata"))))
    return cases


def one_line(case: Case) -> str:
    text = case.text if len(case.text) < 600 else case.text[:600] + f"... ({len(case.text)} characters)"
    return f"{case.kind} {case.path} <- {case.mutation} (expect {case.expect}):\n{text}"
