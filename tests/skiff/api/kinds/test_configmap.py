"""ConfigMap's strategy: keys, the 1 MiB limit, immutable data; its columns and describe."""
from datetime import datetime, timezone

from proto.skiff.v1 import types_pb2
from skiff.api import kinds
from skiff.api.kinds import configmap as configmaps

S = configmaps.KIND.strategy
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def cm(**data: str) -> types_pb2.ConfigMap:
    c = types_pb2.ConfigMap()
    c.metadata.name = "settings"
    c.data.update(data)
    return S.defaults(c)


def paths(obj) -> list[str]:
    return [e.path for e in S.validate(obj)]


def test_keys_must_be_config_keys():
    good = cm(**{"app.properties": "a=b", "KEY_NAME": "x", "key-name": "y"})
    assert paths(good) == []
    bad = cm()
    bad.data["no/slashes"] = "x"
    bad.data["."] = "x"
    bad.binary_data["x" * 254] = b"x"
    assert sorted(paths(bad)) == sorted(["data[no/slashes]", "data[.]", f"binaryData[{'x' * 254}]"])
    [error] = [e for e in S.validate(bad) if e.path == "data[no/slashes]"]
    assert "[-._a-zA-Z0-9]+" in error.message


def test_a_key_in_data_and_binary_data_is_a_duplicate():
    c = cm(k="text")
    c.binary_data["k"] = b"\x00"
    [error] = S.validate(c)
    assert (error.path, error.message) == ("binaryData[k]", "duplicate of key 'k' present in data")


def test_total_size_is_at_most_one_mebibyte():
    at_limit = cm(a="x" * (1024 * 1024 - 10))
    at_limit.binary_data["b"] = b"\x01" * 10
    assert paths(at_limit) == []
    over = cm(a="x" * (1024 * 1024 - 10))
    over.binary_data["b"] = b"\x01" * 11
    [error] = S.validate(over)
    assert error.path == "data" and "1048576 bytes" in error.message


def test_immutable_data_cannot_change_nor_be_made_mutable():
    old = S.prepare_create(cm(a="1"))
    old.immutable = True
    changed = cm(a="2")
    changed.immutable = True
    errors = S.validate_update(old, S.prepare_update(old, changed))
    assert [(e.path, e.message) for e in errors] == [("data", "field is immutable when `immutable` is set")]
    unlocked = cm(a="1")
    unlocked.immutable = False
    assert [e.path for e in S.validate_update(old, S.prepare_update(old, unlocked))] == ["immutable"]
    relabeled = cm(a="1")
    relabeled.immutable = True
    relabeled.metadata.labels["x"] = "y"
    assert S.validate_update(old, S.prepare_update(old, relabeled)) == []
    mutable = S.prepare_create(cm(a="1"))
    assert S.validate_update(mutable, S.prepare_update(mutable, cm(a="2"))) == []


def test_columns_and_describe():
    c = S.prepare_create(cm(a="1", b="two\nlines"))
    c.binary_data["blob"] = b"\x00\x01\x02"
    assert S.columns(wide=False) == ["NAME", "DATA", "AGE"]
    assert S.row(c, wide=False, now=NOW)[:2] == ["settings", "3"]
    text = S.describe(c, kinds.DescribeContext(events=[], now=NOW))
    assert "Data\n====\na:\n----\n1\n\nb:\n----\ntwo\nlines\n" in text
    assert "BinaryData\n====\nblob: 3 bytes\n" in text
