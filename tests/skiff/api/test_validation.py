"""validate(): each bad input gives an error naming its field path."""
import pytest

from proto.skiff.v1 import types_pb2
from skiff.api.kinds import validate


def good_pod() -> types_pb2.Pod:
    p = types_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = "web"
    c = p.spec.containers.add(name="app", image="busybox")
    c.resources.limits["memory"] = "128Mi"
    c.resources.limits["cpu"] = "500m"
    c.ports.add(container_port=80, host_port=8080)
    v = p.spec.volumes.add(name="data")
    v.empty_dir.medium = "Memory"
    c.volume_mounts.add(name="data", mount_path="/data")
    return p


def paths(obj) -> list[str]:
    return [e.path for e in validate(obj)]


def test_a_good_pod_has_no_errors():
    assert validate(good_pod()) == []


@pytest.mark.parametrize("mutate, path, words", [
    (lambda p: setattr(p.metadata, "name", ""), "metadata.name", "required"),
    (lambda p: setattr(p.metadata, "name", "Web_1"), "metadata.name", "RFC 1123"),
    (lambda p: p.spec.ClearField("containers"), "spec.containers", "at least one container"),
    (lambda p: setattr(p.spec.containers[0], "image", ""), "spec.containers[0].image", "required"),
    (lambda p: setattr(p.spec.containers[0], "name", ""), "spec.containers[0].name", "required"),
    (lambda p: p.spec.containers.add(name="app", image="x"), "spec.containers[1].name", "duplicate"),
    (lambda p: p.spec.containers[0].resources.limits.__setitem__("memory", "12Gigs"),
     "spec.containers[0].resources.limits.memory", "12Gigs"),
    (lambda p: p.spec.containers[0].resources.requests.__setitem__("cpu", "lots"),
     "spec.containers[0].resources.requests.cpu", "invalid quantity"),
    (lambda p: p.spec.containers[0].resources.requests.__setitem__("memory", "1Gi"),
     "spec.containers[0].resources.requests.memory", "less than or equal"),
    (lambda p: setattr(p.spec, "restart_policy", "Sometimes"), "spec.restartPolicy", "Sometimes"),
    (lambda p: setattr(p.spec.containers[0], "image_pull_policy", "Maybe"),
     "spec.containers[0].imagePullPolicy", "Maybe"),
    (lambda p: setattr(p.spec.containers[0].ports[0], "container_port", 70000),
     "spec.containers[0].ports[0].containerPort", "65535"),
    (lambda p: setattr(p.spec.containers[0].ports[0], "host_port", -1),
     "spec.containers[0].ports[0].hostPort", "65535"),
    (lambda p: setattr(p.spec.containers[0].volume_mounts[0], "name", "nope"),
     "spec.containers[0].volumeMounts[0].name", "nope"),
    (lambda p: setattr(p.spec.containers[0].volume_mounts[0], "mount_path", "rel"),
     "spec.containers[0].volumeMounts[0].mountPath", "absolute"),
])
def test_each_bad_field_is_named(mutate, path, words):
    pod = good_pod()
    mutate(pod)
    errors = validate(pod)
    assert path in [e.path for e in errors], errors
    assert words in next(e.message for e in errors if e.path == path)


def test_all_errors_are_reported_at_once():
    pod = good_pod()
    pod.metadata.name = ""
    pod.spec.containers[0].image = ""
    assert paths(pod) == ["metadata.name", "spec.containers[0].image"]


def test_node_with_bad_capacity():
    node = types_pb2.Node()
    node.metadata.name = "node-1"
    node.status.capacity["memory"] = "8 gigs"
    assert paths(node) == ["status.capacity.memory"]
