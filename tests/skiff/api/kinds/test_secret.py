"""Secret's strategy and manifests: base64 data, stringData folded in, type,
the 1 MiB limit, immutable; describe shows sizes, never values."""
import base64
from datetime import datetime, timezone

from proto.skiff.v1 import types_pb2
from skiff.api import kinds, manifest, printers
from skiff.api.kinds import secret as secrets

S = secrets.KIND.strategy
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def secret(**data: bytes) -> types_pb2.Secret:
    s = types_pb2.Secret()
    s.metadata.name = "db"
    s.data.update(data)
    return s


def test_string_data_is_folded_into_data_and_cleared_and_type_defaults_to_opaque():
    s = secret(user=b"admin", password=b"old")
    s.string_data["password"] = "hunter2"
    s = S.defaults(s)
    assert dict(s.data) == {"user": b"admin", "password": b"hunter2"}
    assert not s.string_data and s.type == "Opaque"


def test_keys_and_size_cover_string_data_too():
    s = secret()
    s.string_data["bad key"] = "x"
    assert [e.path for e in S.validate(s)] == ["stringData[bad key]"]
    big = secret(a=b"x" * (1024 * 1024))
    big.string_data["b"] = "y"
    [error] = S.validate(big)
    assert error.path == "data" and "at most 1048576 bytes" in error.message
    assert S.validate(secret(a=b"x" * (1024 * 1024))) == []


def test_type_is_immutable_and_immutable_data_stays():
    old = S.prepare_create(S.defaults(secret(a=b"1")))
    retyped = S.defaults(secret(a=b"1"))
    retyped.type = "kubernetes.io/tls"
    assert [(e.path, e.message) for e in S.validate_update(old, S.prepare_update(old, retyped))] == [
        ("type", "field is immutable")]
    old.immutable = True
    changed = S.defaults(secret(a=b"2"))
    changed.immutable = True
    assert [e.path for e in S.validate_update(old, S.prepare_update(old, changed))] == ["data"]


def test_describe_shows_sizes_and_never_values():
    s = S.prepare_create(S.defaults(secret(password=b"hunter2", user=b"admin")))
    text = S.describe(s, kinds.DescribeContext(events=[], now=NOW))
    assert "Type:  Opaque" in text
    assert "password:  7 bytes\nuser:      5 bytes\n" in text
    assert "hunter2" not in text and "admin" not in text and base64.b64encode(b"hunter2").decode() not in text
    assert S.columns(wide=False) == ["NAME", "TYPE", "DATA", "AGE"]
    assert S.row(s, wide=False, now=NOW)[:3] == ["db", "Opaque", "2"]


YAML = """apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
data:
  password: aHVudGVyMg==
stringData:
  user: admin
"""


def test_manifest_data_is_base64_as_kubectl_users_write_it(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text(YAML)
    [doc] = manifest.load([str(path)])
    assert doc.ok, [str(e) for e in doc.errors]
    assert doc.obj.data["password"] == b"hunter2" and doc.obj.string_data["user"] == "admin"
    # and it prints back as base64, as `kubectl get secret -o yaml` does
    assert printers.to_dict(S.defaults(doc.obj))["data"] == {"password": "aHVudGVyMg==",
                                                             "user": base64.b64encode(b"admin").decode()}


def test_bad_base64_is_named_with_its_line(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text(YAML.replace("aHVudGVyMg==", "not base64!"))
    [doc] = manifest.load([str(path)])
    [error] = doc.errors
    assert (error.path, error.line) == ("data.password", 7) and "illegal base64 data" in error.message
