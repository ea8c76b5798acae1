"""Namespace's strategy: Active with the `kubernetes` finalizer at creation,
Terminating when deleted, its finalizers kept by updates while it is active."""
from proto.skiff.v1 import types_pb2
from skiff.api.kinds import namespace as namespaces

S = namespaces.KIND.strategy


def namespace(name: str = "dev") -> types_pb2.Namespace:
    ns = types_pb2.Namespace()
    ns.metadata.name = name
    return S.defaults(ns)


def test_created_active_with_the_kubernetes_finalizer_and_name_label():
    ns = namespace()
    ns.status.phase = "Terminating"
    created = S.prepare_create(ns)
    assert created.status.phase == "Active"
    assert list(created.spec.finalizers) == ["kubernetes"]
    assert created.metadata.labels["kubernetes.io/metadata.name"] == "dev"
    assert created.metadata.namespace == ""


def test_names_are_dns_labels():
    assert [e.path for e in S.validate(namespace("a.b"))] == ["metadata.name"]
    assert [e.path for e in S.validate(namespace("x" * 64))] == ["metadata.name"]
    assert S.validate(namespace("team-1")) == []


def test_delete_marks_terminating_once_and_finalizers_hold_it():
    created = S.prepare_create(namespace())
    marked = S.on_delete(created, None)
    assert marked.status.phase == "Terminating" and marked.metadata.HasField("deletion_timestamp")
    assert S.on_delete(marked, None) is marked          # deleting again changes nothing
    assert S.finalizers(marked) == ["kubernetes"]
    finalized = types_pb2.Namespace()
    finalized.CopyFrom(marked)
    del finalized.spec.finalizers[:]
    assert S.on_delete(finalized, None) is None         # nothing holds it: removed


def test_updates_keep_the_finalizers_until_it_terminates():
    created = S.prepare_create(namespace())
    relabeled = namespace()
    relabeled.metadata.labels["team"] = "a"
    assert list(S.prepare_update(created, relabeled).spec.finalizers) == ["kubernetes"]
    marked = S.on_delete(created, None)
    finalize = types_pb2.Namespace()
    finalize.CopyFrom(marked)
    del finalize.spec.finalizers[:]
    assert list(S.prepare_update(marked, finalize).spec.finalizers) == []
    assert S.prepare_update(marked, finalize).status.phase == "Terminating"


def test_columns():
    created = S.prepare_create(namespace())
    assert S.columns(wide=False) == ["NAME", "STATUS", "AGE"]
    assert S.row(created, wide=False, now=created.metadata.creation_timestamp.ToDatetime(
        tzinfo=__import__("datetime").timezone.utc))[:2] == ["dev", "Active"]
