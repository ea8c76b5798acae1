"""skiff.api.merge: apply's three-way merge, strategic/JSON merge patch, JSON patch."""
from __future__ import annotations

import json

import pytest

from skiff.api.merge import (LAST_APPLIED, PatchError, applied, json_merge_patch, json_patch, last_applied,
                             strategic_merge_patch, three_way, with_last_applied)


def pod(*, labels=None, env=None, ports=None, extra_containers=(), **spec):
    container = {"name": "main", "image": "busybox"}
    if env is not None:
        container["env"] = env
    if ports is not None:
        container["ports"] = ports
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": labels or {}},
            "spec": {"containers": [container, *extra_containers], **spec}}


def test_field_removed_from_the_manifest_is_removed():
    original = pod(labels={"app": "web", "tier": "front"})
    modified = pod(labels={"app": "web"})
    current = pod(labels={"app": "web", "tier": "front"})
    assert three_way(original, modified, current)["metadata"]["labels"] == {"app": "web"}


def test_field_owned_by_another_writer_is_kept():
    original = pod(labels={"app": "web"})
    modified = pod(labels={"app": "web", "new": "1"})
    current = pod(labels={"app": "web", "scaled-by": "hpa"}, nodeName="n1")
    current["status"] = {"phase": "Running"}
    current["metadata"]["uid"] = "u1"
    merged = three_way(original, modified, current)
    assert merged["metadata"]["labels"] == {"app": "web", "new": "1", "scaled-by": "hpa"}
    assert merged["spec"]["nodeName"] == "n1" and merged["status"] == {"phase": "Running"}
    assert merged["metadata"]["uid"] == "u1"


def test_env_keyed_by_name():
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    original = pod(env=env)
    modified = pod(env=[{"name": "A", "value": "10"}])
    current = pod(env=env + [{"name": "INJECTED", "value": "x"}])
    merged = three_way(original, modified, current)
    assert merged["spec"]["containers"][0]["env"] == [{"name": "A", "value": "10"}, {"name": "INJECTED", "value": "x"}]


def test_containers_keyed_by_name_keep_fields_set_by_others():
    sidecar = {"name": "sidecar", "image": "envoy"}
    original = pod()
    modified = pod()
    modified["spec"]["containers"][0]["image"] = "busybox:2"
    current = pod(extra_containers=[sidecar])
    current["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"   # a server default
    merged = three_way(original, modified, current)
    assert merged["spec"]["containers"] == [
        {"name": "main", "image": "busybox:2", "imagePullPolicy": "IfNotPresent"}, sidecar]


def test_container_removed_from_the_manifest_goes():
    sidecar = {"name": "sidecar", "image": "envoy"}
    original = pod(extra_containers=[sidecar])
    merged = three_way(original, pod(), pod(extra_containers=[sidecar]))
    assert [c["name"] for c in merged["spec"]["containers"]] == ["main"]


def test_ports_keyed_by_container_port():
    original = pod(ports=[{"containerPort": 80, "name": "http"}, {"containerPort": 443}])
    modified = pod(ports=[{"containerPort": 80, "name": "web"}])
    current = pod(ports=[{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}])
    merged = three_way(original, modified, current)
    assert merged["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "name": "web", "protocol": "TCP"}]


def test_unkeyed_lists_are_replaced():
    original = {"spec": {"containers": [{"name": "m", "command": ["a", "b"]}]}}
    modified = {"spec": {"containers": [{"name": "m", "command": ["c"]}]}}
    assert three_way(original, modified, original)["spec"]["containers"][0]["command"] == ["c"]


def test_apply_bookkeeping_round_trip():
    manifest = pod(labels={"app": "web", "tier": "front"})
    created = with_last_applied(manifest)
    text = created["metadata"]["annotations"][LAST_APPLIED]
    assert text.endswith("}\n") and ", " not in text and ": " not in text   # compact, as kubectl writes it
    assert last_applied(created) == manifest
    live = json.loads(json.dumps(created))
    live["status"] = {"phase": "Pending"}
    merged = applied(pod(labels={"app": "web"}), live)
    assert merged["metadata"]["labels"] == {"app": "web"} and merged["status"] == {"phase": "Pending"}
    assert last_applied(merged) == pod(labels={"app": "web"})
    assert applied(pod(labels={"app": "web"}), merged) == merged    # nothing more to change


def test_strategic_merge_patch():
    current = pod(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], labels={"x": "1"})
    patch = {"metadata": {"labels": {"x": None, "y": "2"}},
             "spec": {"containers": [{"name": "main", "env": [{"name": "A", "value": "9"},
                                                              {"name": "B", "$patch": "delete"},
                                                              {"name": "C", "value": "3"}]}]}}
    out = strategic_merge_patch(current, patch)
    assert out["metadata"]["labels"] == {"y": "2"}
    assert out["spec"]["containers"][0] == {"name": "main", "image": "busybox",
                                           "env": [{"name": "A", "value": "9"}, {"name": "C", "value": "3"}]}
    with pytest.raises(PatchError, match="merge key 'name'"):
        strategic_merge_patch(current, {"spec": {"containers": [{"image": "x"}]}})


def test_json_merge_patch_rfc7386_examples():
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    assert json_merge_patch(target, {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}}
    assert json_merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert json_merge_patch({"a": "foo"}, "bar") == "bar"
    assert json_merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert json_merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_json_patch_rfc6902():
    doc = {"metadata": {"labels": {"a/b": "1"}}, "items": [1, 2, 3]}
    out = json_patch(doc, [
        {"op": "add", "path": "/items/-", "value": 4},
        {"op": "remove", "path": "/items/0"},
        {"op": "replace", "path": "/metadata/labels/a~1b", "value": "2"},
        {"op": "copy", "from": "/items/0", "path": "/first"},
        {"op": "move", "from": "/first", "path": "/metadata/first"},
        {"op": "test", "path": "/items", "value": [2, 3, 4]},
    ])
    assert out == {"metadata": {"labels": {"a/b": "2"}, "first": 2}, "items": [2, 3, 4]}
    assert doc["items"] == [1, 2, 3]    # the input is not changed
    with pytest.raises(PatchError, match="test"):
        json_patch(doc, [{"op": "test", "path": "/items/0", "value": 9}])
    with pytest.raises(PatchError, match="does not exist"):
        json_patch(doc, [{"op": "remove", "path": "/spec/x"}])
    with pytest.raises(PatchError, match="out of range"):
        json_patch(doc, [{"op": "add", "path": "/items/7", "value": 1}])
    with pytest.raises(PatchError, match="unknown op"):
        json_patch(doc, [{"op": "frob", "path": "/items"}])
