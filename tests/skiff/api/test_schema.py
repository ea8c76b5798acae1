"""skiff.api.schema: explain's fields, kubectl's type names, and .proto comments as descriptions."""
from __future__ import annotations

import pytest

from proto.skiff.v1 import types_pb2
from skiff.api import schema


def test_comments_come_from_the_proto_files():
    notes = schema.comments()
    assert notes["skiff.v1.ContainerPort.protocol"] == "TCP (default) or UDP"            # end of line
    assert notes["skiff.v1.ObjectMeta.resource_version"].startswith("etcd's mod_revision")  # above


def test_fields_use_json_names_and_kubectl_types():
    by_name = {f.name: f for f in schema.fields_of(types_pb2.Container.DESCRIPTOR)}
    assert by_name["imagePullPolicy"].type == "string"
    assert by_name["ports"].type == "[]ContainerPort" and by_name["ports"].message is not None
    assert by_name["command"].type == "[]string"
    meta = {f.name: f.type for f in schema.fields_of(types_pb2.ObjectMeta.DESCRIPTOR)}
    assert meta["labels"] == "map[string]string" and meta["creationTimestamp"] == "string"
    assert meta["generation"] == "integer"
    top = [f.name for f in schema.fields_of(types_pb2.Pod.DESCRIPTOR, top_level=True)]
    assert top[:2] == ["apiVersion", "kind"] and "spec" in top


def test_resolve_a_field_path():
    field, nested = schema.resolve(types_pb2.Pod.DESCRIPTOR, ["spec", "containers", "ports"])
    assert field.name == "ports" and nested.name == "ContainerPort"
    field, nested = schema.resolve(types_pb2.Pod.DESCRIPTOR, ["spec", "node_name"])   # proto names too
    assert field.name == "nodeName" and nested is None
    with pytest.raises(schema.SchemaError, match='field "nope" does not exist'):
        schema.resolve(types_pb2.Pod.DESCRIPTOR, ["spec", "nope"])
    with pytest.raises(schema.SchemaError, match='field "deeper" does not exist'):
        schema.resolve(types_pb2.Pod.DESCRIPTOR, ["spec", "nodeName", "deeper"])
