"""The API server's object rules as pure functions: defaults, what updates may change, bind, graceful delete."""
import pytest

from controlplane.api import objects
from proto.skiff.v1 import types_pb2
from skiff.api import meta


def pod() -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = "web"
    p.spec.containers.add(name="c", image="busybox").ports.add(container_port=80)
    return objects.apply_defaults(p)


def stored() -> types_pb2.Pod:
    p = objects.prepare_create(pod())
    p.metadata.resource_version = "7"
    return p


def test_defaults_are_kubernetes_ones():
    p = pod()
    assert (p.kind, p.api_version, p.metadata.namespace) == ("Pod", "v1", "default")
    assert p.spec.restart_policy == "Always" and p.spec.termination_grace_period_seconds == 30
    assert p.spec.scheduler_name == "default-scheduler"
    assert p.spec.containers[0].ports[0].protocol == "TCP"
    node = types_pb2.Node()
    node.metadata.namespace = "whatever"
    assert objects.apply_defaults(node).metadata.namespace == ""


def test_update_keeps_server_fields_and_status_and_bumps_generation_on_spec_change():
    old = stored()
    old.status.phase = "Running"
    new = pod()
    new.spec.containers[0].image = "busybox:2"
    merged = objects.merge_update(old, new, keep_node_name=True)
    assert merged.metadata.uid == old.metadata.uid
    assert merged.metadata.creation_timestamp == old.metadata.creation_timestamp
    assert merged.status.phase == "Running"
    assert merged.metadata.generation == old.metadata.generation + 1
    labels_only = pod()
    labels_only.metadata.labels["a"] = "b"
    assert objects.merge_update(old, labels_only, keep_node_name=True).metadata.generation == old.metadata.generation


def test_pod_spec_changes_beyond_images_are_forbidden():
    new = pod()
    new.spec.restart_policy = "Never"
    with pytest.raises(objects.Forbidden) as err:
        objects.merge_update(stored(), new, keep_node_name=True)
    assert err.value.field_path == "spec"


def test_apply_without_node_name_keeps_the_binding_but_moving_is_forbidden():
    bound = objects.bind(stored(), "node-1")
    assert objects.merge_update(bound, pod(), keep_node_name=True).spec.node_name == "node-1"
    moved = pod()
    moved.spec.node_name = "node-2"
    with pytest.raises(objects.Forbidden, match="cannot be moved"):
        objects.merge_update(bound, moved, keep_node_name=True)


def test_bind_sets_condition_and_refuses_twice():
    bound = objects.bind(stored(), "node-1")
    cond = meta.get_condition(bound.status.conditions, "PodScheduled")
    assert (bound.spec.node_name, cond.status) == ("node-1", "True")
    with pytest.raises(objects.Forbidden, match="already assigned"):
        objects.bind(bound, "node-2")


def test_mark_for_deletion_uses_the_pod_grace_and_only_shortens():
    p = objects.bind(stored(), "node-1")
    p.spec.termination_grace_period_seconds = 5
    marked = objects.mark_for_deletion(p, None)
    assert marked.metadata.deletion_grace_period_seconds == 5
    assert meta.seconds(marked.metadata.deletion_timestamp) > meta.seconds(p.metadata.creation_timestamp)
    assert objects.mark_for_deletion(marked, None) is None      # already marked: nothing new
    assert objects.mark_for_deletion(marked, 10) is None        # a longer grace does not extend it
    assert objects.mark_for_deletion(marked, 1).metadata.deletion_grace_period_seconds == 1


def test_node_reregistration_keeps_its_pod_cidr():
    old = types_pb2.Node()
    old.metadata.name = "n"
    old.spec.pod_cidr = "10.244.3.0/24"
    old.spec.pod_cidrs.append("10.244.3.0/24")
    again = types_pb2.Node()
    again.metadata.name = "n"
    assert objects.merge_update(old, again, keep_node_name=True).spec.pod_cidr == "10.244.3.0/24"
