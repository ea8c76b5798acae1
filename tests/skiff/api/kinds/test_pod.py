"""Pod's strategy: defaults, what an update may change (spec vs status,
generation), bind and graceful delete - the rules the API server applies,
tested as pure functions."""
import pytest

from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.api.kinds import pod as pods

S = pods.KIND.strategy


def pod() -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = "web"
    p.spec.containers.add(name="c", image="busybox").ports.add(container_port=80)
    return S.defaults(p)


def stored() -> types_pb2.Pod:
    p = S.prepare_create(pod())
    p.metadata.resource_version = "7"
    return p


def test_defaults_are_kubernetes_ones():
    p = pod()
    assert (p.kind, p.api_version, p.metadata.namespace) == ("Pod", "v1", "default")
    assert p.spec.restart_policy == "Always" and p.spec.termination_grace_period_seconds == 30
    assert p.spec.scheduler_name == "default-scheduler"
    assert p.spec.containers[0].ports[0].protocol == "TCP"


def test_create_resets_status_to_pending_and_sets_server_metadata():
    p = pod()
    p.status.phase = "Running"
    created = S.prepare_create(p)
    assert created.status.phase == "Pending"
    assert created.metadata.uid and created.metadata.generation == 1
    assert created.metadata.HasField("creation_timestamp")


def test_update_keeps_server_fields_and_status_and_bumps_generation_on_spec_change():
    old = stored()
    old.status.phase = "Running"
    new = pod()
    new.spec.containers[0].image = "busybox:2"
    new.status.phase = "Failed"
    merged = S.prepare_update(old, new)
    assert S.validate_update(old, merged) == []
    assert merged.metadata.uid == old.metadata.uid
    assert merged.metadata.creation_timestamp == old.metadata.creation_timestamp
    assert merged.status.phase == "Running"
    assert merged.metadata.generation == old.metadata.generation + 1
    labels_only = pod()
    labels_only.metadata.labels["a"] = "b"
    assert S.prepare_update(old, labels_only).metadata.generation == old.metadata.generation


def test_status_update_keeps_everything_but_the_status():
    old = stored()
    new = pod()
    new.metadata.labels["ignored"] = "yes"
    new.spec.containers[0].image = "ignored"
    new.status.phase = "Running"
    updated = S.prepare_status_update(old, new)
    assert updated.status.phase == "Running"
    assert "ignored" not in updated.metadata.labels and updated.spec == old.spec


def test_pod_spec_changes_beyond_images_are_forbidden():
    old, new = stored(), pod()
    new.spec.restart_policy = "Never"
    [error] = S.validate_update(old, S.prepare_update(old, new))
    assert error.path == "spec" and "may not change fields" in error.message


def test_apply_without_node_name_keeps_the_binding_but_moving_is_forbidden():
    bound = pods.bind(stored(), "node-1")
    assert S.prepare_apply(bound, pod()).spec.node_name == "node-1"
    moved = pod()
    moved.spec.node_name = "node-2"
    [error] = S.validate_update(bound, S.prepare_apply(bound, moved))
    assert error.path == "spec.nodeName" and "cannot be moved" in error.message


def test_bind_sets_condition_and_refuses_twice():
    bound = pods.bind(stored(), "node-1")
    cond = meta.get_condition(bound.status.conditions, "PodScheduled")
    assert (bound.spec.node_name, cond.status) == ("node-1", "True")
    with pytest.raises(pods.BindError, match="already assigned"):
        pods.bind(bound, "node-2")


def test_mark_for_deletion_uses_the_pod_grace_and_only_shortens():
    p = pods.bind(stored(), "node-1")
    p.spec.termination_grace_period_seconds = 5
    marked = pods.mark_for_deletion(p, None)
    assert marked.metadata.deletion_grace_period_seconds == 5
    assert meta.seconds(marked.metadata.deletion_timestamp) > meta.seconds(p.metadata.creation_timestamp)
    assert pods.mark_for_deletion(marked, None) is None      # already marked: nothing new
    assert pods.mark_for_deletion(marked, 10) is None        # a longer grace does not extend it
    assert pods.mark_for_deletion(marked, 1).metadata.deletion_grace_period_seconds == 1


def test_on_delete_marks_bound_pods_only():
    assert S.on_delete(stored(), None) is None                      # unbound: removed at once
    bound = pods.bind(stored(), "node-1")
    assert S.on_delete(bound, 0) is None                            # the agent confirms: removed
    marked = S.on_delete(bound, None)
    assert marked.metadata.HasField("deletion_timestamp")
    assert S.on_delete(marked, None) == marked                      # already marked: unchanged


def test_field_selectors_and_columns():
    p = pods.bind(stored(), "node-1")
    assert S.field_selectors["spec.nodeName"](p) == "node-1"
    assert S.columns(wide=False) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert S.columns(wide=True)[-2:] == ["IP", "NODE"]
