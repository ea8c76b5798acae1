"""ConfigMaps, Secrets and Namespaces through the real CLI on a real control
plane: what a kubectl user types and sees."""
from __future__ import annotations

import base64

import pytest
import yaml

pytestmark = pytest.mark.etcd

OBJECTS = """\
apiVersion: v1
kind: Namespace
metadata:
  name: dev
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: dev
data:
  app.properties: |
    color=blue
  mode: fast
binaryData:
  logo: AAEC
---
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: dev
data:
  password: aHVudGVyMg==
stringData:
  user: admin
"""


def columns(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_configmaps_and_secrets_store_list_and_describe_without_values(skiff, controlplane, tmp_path):
    (tmp_path / "objects.yaml").write_text(OBJECTS)
    applied = skiff("apply", "-f", "objects.yaml", server=controlplane)
    assert (applied.returncode, applied.stdout.splitlines()) == (
        0, ["namespace/dev created", "configmap/settings created", "secret/db created"]), applied.stderr

    cms = skiff("get", "configmaps", "-n", "dev", server=controlplane)
    assert columns(cms.stdout)[0] == ["NAME", "DATA", "AGE"] and columns(cms.stdout)[1][:2] == ["settings", "3"]
    secrets = skiff("get", "secrets", "-n", "dev", server=controlplane)
    assert columns(secrets.stdout)[0] == ["NAME", "TYPE", "DATA", "AGE"]
    assert columns(secrets.stdout)[1][:3] == ["db", "Opaque", "2"]
    assert columns(skiff("get", "cm", "-A", server=controlplane).stdout)[1][:2] == ["dev", "settings"]
    namespaces = columns(skiff("get", "ns", server=controlplane).stdout)
    assert namespaces[0] == ["NAME", "STATUS", "AGE"]
    assert {(row[0], row[1]) for row in namespaces[1:]} >= {("default", "Active"), ("dev", "Active"),
                                                            ("kube-system", "Active"), ("skiff-system", "Active")}

    described = skiff("describe", "secret", "db", "-n", "dev", server=controlplane)
    assert described.returncode == 0, described.stderr
    assert "password:  7 bytes" in described.stdout and "user:      5 bytes" in described.stdout
    assert "hunter2" not in described.stdout and "aHVudGVyMg" not in described.stdout
    described = skiff("describe", "configmap", "settings", "-n", "dev", server=controlplane).stdout
    assert "mode:\n----\nfast\n" in described and "logo: 3 bytes" in described

    stored = yaml.safe_load(skiff("get", "secret", "db", "-n", "dev", "-o", "yaml", server=controlplane).stdout)
    assert stored["type"] == "Opaque" and "stringData" not in stored
    assert {k: base64.b64decode(v) for k, v in stored["data"].items()} == {"password": b"hunter2", "user": b"admin"}


def test_size_limit_and_immutable_are_refused_with_the_field(skiff, controlplane, tmp_path):
    big = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: " + "x" * (1024 * 1024 + 1) + "\n"
    (tmp_path / "big.yaml").write_text(big)
    refused = skiff("apply", "-f", "big.yaml", server=controlplane)
    assert refused.returncode == 1 and "data: too long" in refused.stderr and "1048576 bytes" in refused.stderr

    frozen = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\nimmutable: true\ndata:\n  k: {value}\n"
    assert skiff("apply", "-f", "-", input=frozen.format(value="one"), server=controlplane).returncode == 0
    changed = skiff("apply", "-f", "-", input=frozen.format(value="two"), server=controlplane)
    assert changed.returncode == 1
    assert "data: field is immutable when `immutable` is set" in changed.stderr, changed.stderr
    got = yaml.safe_load(skiff("get", "cm", "frozen", "-o", "yaml", server=controlplane).stdout)
    assert got["data"] == {"k": "one"} and got["immutable"] is True


def test_objects_in_a_missing_namespace_are_refused_and_a_deleted_namespace_takes_its_objects(
        skiff, controlplane, tmp_path):
    (tmp_path / "objects.yaml").write_text(OBJECTS.split("---\n", 1)[1])   # without the namespace
    refused = skiff("apply", "-f", "objects.yaml", server=controlplane)
    assert refused.returncode == 1 and 'namespaces "dev" not found' in refused.stderr
    (tmp_path / "objects.yaml").write_text(OBJECTS)
    assert skiff("apply", "-f", "objects.yaml", server=controlplane).returncode == 0
    deleted = skiff("delete", "namespace", "dev", "--timeout", "60s", server=controlplane)
    assert (deleted.returncode, deleted.stdout) == (0, 'namespace "dev" deleted\n'), deleted.stderr
    assert "dev" not in skiff("get", "ns", "-o", "name", server=controlplane).stdout
    gone = skiff("get", "secrets", "-n", "dev", server=controlplane)
    assert gone.stdout == "" and "No resources found in dev namespace." in gone.stderr


def test_all_namespaces_for_describe_and_delete(skiff, controlplane, tmp_path):
    (tmp_path / "objects.yaml").write_text(OBJECTS + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                                     "  name: plain\ndata:\n  k: v\n")
    assert skiff("apply", "-f", "objects.yaml", server=controlplane).returncode == 0
    described = skiff("describe", "cm", "-A", server=controlplane).stdout
    assert "Name:             settings\nNamespace:        dev" in described
    assert "Name:             plain\nNamespace:        default" in described
    refused = skiff("delete", "cm", "plain", "-A", server=controlplane)
    assert refused.returncode == 1 and "-A/--all-namespaces goes with --all or -l" in refused.stderr
    deleted = skiff("delete", "cm", "--all", "-A", server=controlplane)
    # Only the user's: the Service allocators' bitmaps are unserved RangeAllocations, not ConfigMaps.
    assert (deleted.returncode, sorted(deleted.stdout.splitlines())) == (
        0, ['configmap "plain" deleted', 'configmap "settings" deleted']), deleted.stderr
    none = skiff("get", "cm", "-A", server=controlplane)
    assert none.stdout == "" and "No resources found" in none.stderr
