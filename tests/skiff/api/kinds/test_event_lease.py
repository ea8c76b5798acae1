"""Event and Lease strategies: Event expires (storage TTL) and sorts by time; both use the generic rules."""
from proto.skiff.v1 import types_pb2
from skiff.api import kinds
from skiff.api.kinds import event, lease


def test_event_expires_and_lease_does_not():
    assert event.KIND.strategy.ttl_seconds == 3600
    assert lease.KIND.strategy.ttl_seconds == 0
    assert kinds.kind_named("Pod").strategy.ttl_seconds == 0


def test_events_sort_by_last_timestamp():
    old, new = types_pb2.Event(), types_pb2.Event()
    old.metadata.name, new.metadata.name = "z-old", "a-new"
    old.last_timestamp.seconds, new.last_timestamp.seconds = 100, 200
    assert sorted([new, old], key=event.KIND.strategy.sort_key) == [old, new]


def test_lease_generation_moves_with_the_spec_only():
    s = lease.KIND.strategy
    first = types_pb2.Lease()
    first.metadata.name = "leader"
    first = s.prepare_create(s.defaults(first))
    assert (first.api_version, first.metadata.namespace) == ("coordination.k8s.io/v1", "default")
    renewed = types_pb2.Lease()
    renewed.CopyFrom(first)
    renewed.spec.holder_identity = "me"
    assert s.prepare_update(first, renewed).metadata.generation == 2
    relabeled = types_pb2.Lease()
    relabeled.CopyFrom(first)
    relabeled.metadata.labels["a"] = "b"
    assert s.prepare_update(first, relabeled).metadata.generation == 1


def test_registry_lookups():
    assert kinds.kind_for_resource("po") is kinds.kind_named("Pod")
    assert kinds.kind_for_resource("ns").name == "Namespace"
    assert kinds.kind_for_resource("cm").name == "ConfigMap"
    assert kinds.kind_of(types_pb2.Secret()).name == "Secret"
    assert kinds.envelope_kind(kinds.wrap(types_pb2.ConfigMap())).name == "ConfigMap"


def test_events_are_selected_by_kubernetes_event_fields():
    from skiff.api.selectors import parse_field_selector
    e = types_pb2.Event(reason="FailedScheduling", type="Warning")
    e.involved_object.kind, e.involved_object.name, e.involved_object.uid = "Pod", "web", "u1"
    e.involved_object.namespace = "default"
    select = "involvedObject.name=web,involvedObject.namespace=default,involvedObject.kind=Pod,involvedObject.uid=u1"
    assert parse_field_selector(select, kind=event.KIND).matches(e)   # what kubectl describe sends
    assert not parse_field_selector("involvedObject.name=other", kind=event.KIND).matches(e)
    assert parse_field_selector("type=Warning,reason=FailedScheduling", kind=event.KIND).matches(e)
