"""Label and field selector parsing and matching."""
import pytest

from proto.skiff.v1 import types_pb2
from skiff.api.selectors import SelectorError, parse_field_selector, parse_label_selector


@pytest.mark.parametrize("selector, labels, expected", [
    ("", {}, True),
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "db"}, False),
    ("app=web,tier!=db", {"app": "web", "tier": "front"}, True),
    ("app=web,tier!=db", {"app": "web", "tier": "db"}, False),
    ("tier!=db", {}, True),
    ("env in (prod, staging)", {"env": "staging"}, True),
    ("env in (prod,staging),app", {"env": "dev", "app": "x"}, False),
    ("env notin (dev)", {"env": "prod"}, True),
    ("gpu", {"gpu": ""}, True),
    ("!gpu", {"gpu": "1"}, False),
    ("example.com/team=a", {"example.com/team": "a"}, True),
])
def test_label_selector_matches(selector, labels, expected):
    assert parse_label_selector(selector).matches(labels) is expected


@pytest.mark.parametrize("bad", ["app=", "=web", "env in ()", "a b"])
def test_bad_label_selector_names_the_term(bad):
    if bad == "app=":  # an empty value is legal in Kubernetes ("app=" matches app: "")
        assert parse_label_selector(bad).matches({"app": ""})
        return
    with pytest.raises(SelectorError, match="invalid label selector term"):
        parse_label_selector(bad)


def test_field_selector_on_pods():
    pod = types_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = "a", "default"
    pod.spec.node_name = "node-1"
    pod.status.phase = "Running"
    assert parse_field_selector("spec.nodeName=node-1", kind="Pod").matches(pod)
    assert not parse_field_selector("spec.nodeName=node-2", kind="Pod").matches(pod)
    assert parse_field_selector("spec.nodeName!=,status.phase=Running", kind="Pod").matches(pod)
    assert not parse_field_selector("metadata.name==b", kind="Pod").matches(pod)
    unbound = types_pb2.Pod()
    assert parse_field_selector("spec.nodeName=", kind="Pod").matches(unbound)


def test_unknown_field_is_refused_with_the_supported_list():
    with pytest.raises(SelectorError, match=r"'spec.foo' is not supported for Pod; supported: .*spec.nodeName"):
        parse_field_selector("spec.foo=x", kind="Pod")
