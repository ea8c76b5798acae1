"""Issue 15, items 4 and 5: what Kubernetes refuses (and what Skiff's runtime
could not use) is refused by the kinds' validation, each with its field path —
the same rules in the CLI, a dry run and the API server."""
import pytest

from proto.skiff.v1 import types_pb2
from skiff.api.kinds import validate
from skiff.api.validation import qualified_name_error


def pod() -> types_pb2.Pod:
    p = types_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = "web"
    c = p.spec.containers.add(name="app", image="busybox")
    p.spec.volumes.add(name="data").host_path.path = "/srv/data"
    c.volume_mounts.add(name="data", mount_path="/data")
    return p


def errors_at(obj, path):
    return [e.message for e in validate(obj) if e.path == path]


def test_a_good_pod_passes():
    p = pod()
    p.metadata.labels["example.com/app"] = "web-1"
    p.metadata.annotations["Example.com/Note"] = "x" * 1000
    sc = p.spec.containers[0].security_context
    sc.capabilities.add[:] = ["NET_ADMIN", "CAP_SYS_TIME", "net_raw"]
    sc.capabilities.drop[:] = ["ALL"]
    sc.seccomp_profile.type = "Unconfined"
    sc.run_as_user = 2**31 - 1
    p.spec.security_context.supplemental_groups[:] = [0, 100]
    p.spec.containers[0].ports.add(container_port=80, host_ip="::1")
    p.spec.termination_grace_period_seconds = 3600
    p.spec.node_name = "node-1.example"
    p.spec.volumes[0].host_path.type = "DirectoryOrCreate"
    for image in ("localhost:5000/a/b:v1", "quay.io/org/img@sha256:" + "a" * 64, "debian-python:bookworm"):
        p.spec.containers[0].image = image
        assert validate(p) == []


@pytest.mark.parametrize("key, words", [
    ("bad key/../x!", "a qualified name must consist of"),
    ("", "name part must be non-empty"),
    ("k" * 300, "name part must be no more than 63 characters"),
    ("Bad_Prefix/x", "prefix part"),
    ("/x", "prefix part must be non-empty"),
    ("example.com/", "name part must be non-empty"),
])
def test_label_keys_are_qualified_names(key, words):
    p = pod()
    p.metadata.labels[key] = "v"
    [message] = errors_at(p, "metadata.labels")
    assert message.startswith("Invalid value: \"") and words in message, message
    assert len(message) < 500


def test_label_values_and_the_quoting_of_what_is_refused():
    p = pod()
    p.metadata.labels["app"] = "bad value\n"
    [message] = errors_at(p, "metadata.labels.app")
    assert message.startswith('Invalid value: "bad value\\n": a valid label must be')
    assert qualified_name_error("app.kubernetes.io/name") is None


def test_annotations_total_at_most_256_kib_counted_in_bytes():
    p = pod()
    p.metadata.annotations["a"] = "x" * (262144 - 1)
    assert errors_at(p, "metadata.annotations") == []
    p.metadata.annotations["a"] = "é" * 131072     # 262144 bytes, 1 key byte over
    [message] = errors_at(p, "metadata.annotations")
    assert "Too long: must have at most 262144 bytes" in message
    p = pod()
    p.metadata.annotations["not a key!"] = "v"
    assert "Invalid value: \"not a key!\"" in errors_at(p, "metadata.annotations")[0]


def test_an_object_beyond_the_store_limit_is_refused_by_validation_naming_the_part():
    p = pod()
    for i in range(2):
        p.spec.containers[0].env.add(name=f"E{i}", value="x" * 1_000_000)
    [error] = [e for e in validate(p) if "too large" in e.message]
    assert error.path == "spec" and "the limit is 1568768 bytes" in error.message


def _set(path_value):
    def mutate(p):
        target, attr, value = path_value(p)
        if isinstance(value, list):
            getattr(target, attr)[:] = value
        else:
            setattr(target, attr, value)
    return mutate


C = lambda p: p.spec.containers[0]  # noqa: E731


@pytest.mark.parametrize("mutate, path, words", [
    (_set(lambda p: (C(p), "command", ["sh", "a\0b"])), "spec.containers[0].command[1]", "NUL"),
    (_set(lambda p: (C(p), "args", ["\0"])), "spec.containers[0].args[0]", "NUL"),
    (_set(lambda p: (C(p), "working_dir", "/w\0")), "spec.containers[0].workingDir", "NUL"),
    (lambda p: C(p).env.add(name="E", value="a\0"), "spec.containers[0].env[0].value", "NUL"),
    (_set(lambda p: (C(p), "image", "bus\0box")), "spec.containers[0].image", "not an image reference"),
    (_set(lambda p: (C(p), "image", "../../../../etc")), "spec.containers[0].image", "not an image reference"),
    (_set(lambda p: (C(p), "image", "/etc/passwd")), "spec.containers[0].image", "not an image reference"),
    (_set(lambda p: (C(p), "image", "busybox\nx")), "spec.containers[0].image", "busybox\\nx"),
    (_set(lambda p: (C(p), "image", "a.com\n/x")), "spec.containers[0].image", "not an image reference"),
    (_set(lambda p: (p.spec, "node_name", "../../etc")), "spec.nodeName", "RFC 1123 subdomain"),
    (_set(lambda p: (p.spec, "node_name", "n" * 1_000_000)), "spec.nodeName", "no more than 253"),
    (_set(lambda p: (C(p).volume_mounts[0], "mount_path", "/../../../etc")),
     "spec.containers[0].volumeMounts[0].mountPath", "'..'"),
    (_set(lambda p: (C(p).volume_mounts[0], "sub_path", "a/../../b")),
     "spec.containers[0].volumeMounts[0].subPath", "'..'"),
    (_set(lambda p: (p.spec.volumes[0].host_path, "type", "Bogus")), "spec.volumes[0].hostPath.type",
     'Unsupported value: "Bogus"'),
    (_set(lambda p: (p.spec.volumes[0].host_path, "path", "/srv/../etc")), "spec.volumes[0].hostPath.path", "'..'"),
    (lambda p: C(p).security_context.capabilities.add.append("CAP_BOGUS"),
     "spec.containers[0].securityContext.capabilities.add[0]", "CAP_BOGUS"),
    (_set(lambda p: (C(p).security_context.seccomp_profile, "type", "Bogus")),
     "spec.containers[0].securityContext.seccompProfile.type", "RuntimeDefault, Unconfined, Localhost"),
    (_set(lambda p: (p.spec.security_context.seccomp_profile, "type", "Localhost")),
     "spec.securityContext.seccompProfile.localhostProfile", "Required value"),
    (_set(lambda p: (p.spec.security_context, "run_as_user", -5)), "spec.securityContext.runAsUser", "-5"),
    (_set(lambda p: (C(p).security_context, "run_as_group", 2**31)),
     "spec.containers[0].securityContext.runAsGroup", "2147483647"),
    (_set(lambda p: (p.spec.security_context, "fs_group", -1)), "spec.securityContext.fsGroup", "-1"),
    (_set(lambda p: (p.spec.security_context, "supplemental_groups", [5, -1])),
     "spec.securityContext.supplementalGroups[1]", "-1"),
    (lambda p: C(p).ports.add(container_port=80, host_ip="not-an-ip"), "spec.containers[0].ports[0].hostIP",
     "valid IP"),
    (_set(lambda p: (p.spec, "termination_grace_period_seconds", 2**63 - 1)),
     "spec.terminationGracePeriodSeconds", "must be at most"),
    (_set(lambda p: (p.spec, "termination_grace_period_seconds", -1)),
     "spec.terminationGracePeriodSeconds", "greater than or equal to 0"),
    (lambda p: p.spec.node_selector.__setitem__("bad key!", "v"), "spec.nodeSelector", "bad key!"),
])
def test_values_kubernetes_refuses_are_named_by_path(mutate, path, words):
    p = pod()
    mutate(p)
    messages = errors_at(p, path)
    assert messages and words in messages[0], validate(p)
    assert all(len(m) < 600 for m in messages)


def test_node_cidrs_addresses_and_port():
    n = types_pb2.Node(api_version="v1", kind="Node")
    n.metadata.name = "n1"
    n.spec.pod_cidr = "10.0.0.0/33"
    n.status.addresses.add(type="InternalIP", address="nope")
    n.status.daemon_endpoints.kubelet_endpoint.port = -1
    paths = {e.path for e in validate(n)}
    assert paths == {"spec.podCIDR", "status.addresses[0].address", "status.daemonEndpoints.kubeletEndpoint.Port"}


def test_timestamps_a_timestamp_cannot_hold_are_refused_with_their_path():
    # A raw API call can send any seconds; stored, every later reader failed on them.
    e = types_pb2.Event(api_version="v1", kind="Event")
    e.metadata.name = "e"
    e.involved_object.kind, e.involved_object.name = "Pod", "p"
    e.last_timestamp.seconds = 2**62
    assert [x.path for x in validate(e)] == ["lastTimestamp"]
    p = pod()
    p.status.conditions.add(type="Ready").last_transition_time.nanos = -1
    assert "not a time between 0001-01-01 and 9999-12-31" in errors_at(p, "status.conditions[0].lastTransitionTime")[0]
