"""The one quantity parser: Kubernetes' forms, bounded in size and value, fast on any input."""
from fractions import Fraction

import pytest

from proto.skiff.v1 import types_pb2
from skiff.api.quantity import MAX_VALUE, QuantityError, cpu_millis, memory_bytes, parse_quantity
from skiff.api.validation import validate


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("-0", 0), ("500m", Fraction(1, 2)), ("0.5", Fraction(1, 2)), (".5", Fraction(1, 2)), ("5.", 5),
    ("128Mi", 128 * 2**20), ("1G", 10**9), ("1k", 1000), ("1e3", 1000), ("1E-3", Fraction(1, 1000)),
    ("1.5Gi", 3 * 2**29), ("7Ei", 7 * 2**60), ("1e18", 10**18), (str(MAX_VALUE), MAX_VALUE), (1, 1), (0.25, Fraction(1, 4)),
    # Below a nano is rounded up to 1n, as Kubernetes does.
    ("1e-20", Fraction(1, 10**9)), ("1e-999999", Fraction(1, 10**9)), ("0.0000000001", Fraction(1, 10**9)),
])
def test_kubernetes_forms(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text, words", [
    ("1e999999", "too large, the limit is 9223372036854775807"),
    ("1e9999999", "too large"),
    ("8Ei", "too large"), ("9223372036854775808", "too large"), ("1e19", "too large"), ("10E", "too large"),
    ("1" * 33, "more than 32 digits"),
    ("1" + "0" * 100, "longer than 64 characters"),
    ("-1", "must not be negative"),
    ("12Gigs", "expected a number"), ("", "expected a number"), (".", "expected a number"),
    ("1e3Mi", "expected a number"), ("inf", "expected a number"), ("nan", "expected a number"),
    (float("inf"), "expected a number"), ("1K", "expected a number"),
])
def test_refused_with_a_reason(text, words):
    with pytest.raises(QuantityError) as info:
        parse_quantity(text)
    assert words in str(info.value)
    assert len(str(info.value)) < 300


def test_conversions_round_up():
    assert cpu_millis("0.1") == 100 and cpu_millis("1") == 1000 and cpu_millis("1n") == 1
    assert memory_bytes("128Mi") == 134217728 and memory_bytes("0.5") == 1


def test_server_validation_names_the_field():
    pod = types_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = "p"
    c = pod.spec.containers.add(name="c", image="busybox")
    c.resources.limits["memory"] = "1e999999"
    c.resources.requests["cpu"] = "1e9999999"
    pod.spec.volumes.add(name="v").empty_dir.size_limit = "1e999999"
    errors = {e.path: e.message for e in validate(pod)}
    assert "too large" in errors["spec.containers[0].resources.limits.memory"]
    assert "too large" in errors["spec.containers[0].resources.requests.cpu"]
    assert "too large" in errors["spec.volumes[0].emptyDir.sizeLimit"]
