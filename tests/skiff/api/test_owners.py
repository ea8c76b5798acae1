"""metadata.ownerReferences and metadata.finalizers as every kind validates them
(Kubernetes' ValidateOwnerReferences / ValidateFinalizers), through the kinds'
own validate so the generic strategy is what is tested."""
from __future__ import annotations

from proto.skiff.v1 import types_pb2
from skiff.api import kinds

UID = "6f1c2a4e-3b9d-4c55-9e2f-0a1b2c3d4e5f"


def configmap(**meta) -> types_pb2.ConfigMap:
    cm = types_pb2.ConfigMap(metadata=types_pb2.ObjectMeta(name="cm", namespace="default", **meta))
    return cm


def ref(**fields) -> types_pb2.OwnerReference:
    return types_pb2.OwnerReference(**{"api_version": "v1", "kind": "ConfigMap", "name": "owner",
                                       "uid": UID, **fields})


def errors(obj) -> list[str]:
    return [str(e) for e in kinds.validate(obj)]


def test_a_complete_reference_and_standard_or_qualified_finalizers_are_valid():
    assert errors(configmap(owner_references=[ref(controller=True, block_owner_deletion=True),
                                              ref(name="other", uid="u-2")],
                            finalizers=["example.com/hold", "orphan"])) == []
    node = types_pb2.Node(metadata=types_pb2.ObjectMeta(name="n1", owner_references=[
        ref(kind="Namespace", name="team")]))
    assert errors(node) == []       # cluster-scoped by cluster-scoped


def test_each_missing_field_of_a_reference_is_named():
    assert errors(configmap(owner_references=[types_pb2.OwnerReference()])) == [
        "metadata.ownerReferences[0].apiVersion: version must not be empty",
        "metadata.ownerReferences[0].kind: kind must not be empty",
        "metadata.ownerReferences[0].name: name must not be empty",
        "metadata.ownerReferences[0].uid: uid must not be empty",
    ]


def test_at_most_one_controller():
    assert errors(configmap(owner_references=[ref(name="a", controller=True), ref(name="b", controller=True)])) == [
        'metadata.ownerReferences: Only one reference can have Controller set to true. Found "true" in '
        'references for a and b']


def test_a_cluster_scoped_object_cannot_have_a_namespaced_owner():
    node = types_pb2.Node(metadata=types_pb2.ObjectMeta(name="n1", owner_references=[ref()]))
    assert errors(node) == ["metadata.ownerReferences[0]: a cluster-scoped object cannot be owned by a "
                            "namespaced ConfigMap (owner)"]


def test_the_owner_must_be_a_served_kind_of_its_api_version_and_not_an_event():
    assert errors(configmap(owner_references=[ref(kind="Widget"), ref(api_version="apps/v1"),
                                              ref(kind="Event")])) == [
        'metadata.ownerReferences[0].kind: Invalid value: "Widget": not a kind Skiff serves '
        '(skiff api-resources lists them)',
        'metadata.ownerReferences[1].apiVersion: Invalid value: "apps/v1": kind ConfigMap is served as v1',
        "metadata.ownerReferences[2]: v1, Kind=Event is disallowed from being an owner",
    ]


def test_finalizer_names():
    assert errors(configmap(finalizers=["hold", "example.com/", "example.com/a/b", "orphan",
                                        "foregroundDeletion"])) == [
        'metadata.finalizers[0]: Invalid value: "hold": name is neither a standard finalizer name nor is it '
        'fully qualified',
        'metadata.finalizers[1]: Invalid value: "example.com/": name part must be non-empty',
        'metadata.finalizers[2]: Invalid value: "example.com/a/b": a qualified name must consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyName', 'my.name' or '123-abc') with an optional DNS subdomain prefix and '/' "
        "(e.g. 'example.com/MyName')",
        "metadata.finalizers: finalizer orphan and foregroundDeletion cannot be both set",
    ]
