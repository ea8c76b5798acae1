"""Node's strategy: re-registration keeps the pod CIDR; a node keeps the status it is created with."""
from proto.skiff.v1 import types_pb2
from skiff.api.kinds import node as nodes

S = nodes.KIND.strategy


def node(name: str = "n") -> types_pb2.Node:
    n = types_pb2.Node()
    n.metadata.name = name
    n.metadata.namespace = "whatever"
    return S.defaults(n)


def test_cluster_scoped_and_keeps_its_status_on_create():
    n = node()
    n.status.capacity["cpu"] = "4"
    created = S.prepare_create(n)
    assert created.metadata.namespace == ""
    assert created.status.capacity["cpu"] == "4"


def test_node_reregistration_keeps_its_pod_cidr_without_a_generation_bump():
    old = S.prepare_create(node())
    old.spec.pod_cidr = "10.244.3.0/24"
    old.spec.pod_cidrs.append("10.244.3.0/24")
    merged = S.prepare_update(old, node())
    assert merged.spec.pod_cidr == "10.244.3.0/24" and list(merged.spec.pod_cidrs) == ["10.244.3.0/24"]
    assert merged.metadata.generation == old.metadata.generation


def test_cordon_is_a_spec_change():
    old = S.prepare_create(node())
    cordoned = node()
    cordoned.spec.unschedulable = True
    assert S.prepare_update(old, cordoned).metadata.generation == old.metadata.generation + 1
    assert S.field_selectors["spec.unschedulable"](cordoned) == "true"


def test_bad_capacity_is_named():
    n = node()
    n.status.capacity["memory"] = "lots"
    assert [e.path for e in S.validate(n)] == ["status.capacity.memory"]
