"""ServiceAccount's kind rules (skiff/api/kinds/serviceaccount.py)."""
from __future__ import annotations

from datetime import datetime, timezone

from proto.skiff.v1 import types_pb2
from skiff.api import kinds, manifest
from skiff.api.kinds import serviceaccount


def test_served_as_kubectl_names_it():
    kind = kinds.kind_named("ServiceAccount")
    assert (kind.api_version, kind.resource, kind.namespaced) == ("v1", "serviceaccounts", True)
    assert kinds.kind_for_resource("sa") is kind
    sa = serviceaccount.new("shop", "web")
    sa.secrets.add(name="web-token")
    sa.metadata.creation_timestamp.FromSeconds(100)
    assert kind.strategy.columns(wide=False) == ["NAME", "SECRETS", "AGE"]
    now = datetime(1970, 1, 1, 0, 6, 40, tzinfo=timezone.utc)
    assert kind.strategy.row(sa, wide=False, now=now) == ["web", "1", "5m"]


def test_a_manifest_parses_with_kubernetes_names():
    [doc] = manifest.parse_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: robot, namespace: ci}\n"
        "automountServiceAccountToken: false\nimagePullSecrets: [{name: registry}]\n", source="sa.yaml")
    assert not doc.errors
    sa = doc.obj
    assert sa.metadata.name == "robot" and sa.automount_service_account_token is False
    assert [s.name for s in sa.image_pull_secrets] == ["registry"]


def test_usernames_and_groups():
    assert serviceaccount.username("ci", "robot") == "system:serviceaccount:ci:robot"
    assert serviceaccount.split_username("system:serviceaccount:ci:robot") == ("ci", "robot")
    assert serviceaccount.split_username("system:node:n1") is None
    assert serviceaccount.groups("ci") == ("system:serviceaccounts", "system:serviceaccounts:ci")


def test_automount_the_pod_wins_then_the_account():
    sa = serviceaccount.new("d")
    spec = types_pb2.PodSpec()
    assert serviceaccount.automount(sa, spec) is True
    sa.automount_service_account_token = False
    assert serviceaccount.automount(sa, spec) is False
    spec.automount_service_account_token = True
    assert serviceaccount.automount(sa, spec) is True
    spec.automount_service_account_token = False
    assert serviceaccount.automount(None, spec) is False
