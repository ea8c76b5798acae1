"""skiff/kubeconfig.py: Skiff's context merged into a kubeconfig as kubectl merges."""
from __future__ import annotations

import stat

import yaml

from skiff import kubeconfig

OTHER = {"apiVersion": "v1", "kind": "Config", "current-context": "prod",
         "clusters": [{"name": "prod", "cluster": {"server": "https://prod:6443"}},
                      {"name": "skiff", "cluster": {"server": "http://old:1"}}],
         "users": [{"name": "admin", "user": {"token": "t"}}],
         "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "admin"}}]}


def test_merge_keeps_other_entries_and_their_current_context(tmp_path):
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(OTHER))
    kubeconfig.write(path, server="http://127.0.0.1:6444")
    merged = yaml.safe_load(path.read_text())
    assert merged["current-context"] == "prod"
    assert {c["name"]: c["cluster"]["server"] for c in merged["clusters"]} == {
        "prod": "https://prod:6443", "skiff": "http://127.0.0.1:6444"}
    assert [u["name"] for u in merged["users"]] == ["admin", "skiff"]
    assert {c["name"] for c in merged["contexts"]} == {"prod", "skiff"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_new_file_or_skiff_current_context_gets_skiff(tmp_path):
    path = tmp_path / "sub" / "config"
    kubeconfig.write(path, server="http://127.0.0.1:1")
    assert yaml.safe_load(path.read_text())["current-context"] == "skiff"
    assert kubeconfig.merge({"current-context": "skiff"}, server="http://x")["current-context"] == "skiff"
    assert kubeconfig.merge({"current-context": ""}, server="http://x")["current-context"] == "skiff"


def test_default_path_follows_kubeconfig_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/a:{tmp_path}/b")
    assert kubeconfig.default_path() == tmp_path / "a"
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kubeconfig.default_path() == tmp_path / ".kube" / "config"


def test_rest_address_is_the_api_port_plus_one_unless_set(monkeypatch):
    monkeypatch.delenv("SKIFF_REST_LISTEN", raising=False)
    assert kubeconfig.rest_address() == "127.0.0.1:6444"
    assert kubeconfig.rest_address(7000) == "127.0.0.1:7001"
    monkeypatch.setenv("SKIFF_REST_LISTEN", "127.0.0.1:9999")
    assert kubeconfig.rest_address(7000) == "127.0.0.1:9999"


def test_remove_drops_only_skiffs_entries_and_only_for_its_server(tmp_path):
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(OTHER))
    kubeconfig.write(path, server="https://127.0.0.1:6444")
    # Another cluster's `up` has the name now: its entries stay.
    assert not kubeconfig.remove(path, server="https://127.0.0.1:7444")
    assert not kubeconfig.remove(tmp_path / "absent", server="https://127.0.0.1:6444")
    assert kubeconfig.remove(path, server="https://127.0.0.1:6444")
    left = yaml.safe_load(path.read_text())
    assert [c["name"] for c in left["clusters"]] == ["prod"]
    assert [u["name"] for u in left["users"]] == ["admin"]
    assert [c["name"] for c in left["contexts"]] == ["prod"]
    assert left["current-context"] == "prod"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Skiff's context was the current one: none is, after.
    solo = tmp_path / "solo"
    kubeconfig.write(solo, server="http://127.0.0.1:1")
    assert kubeconfig.remove(solo, server="http://127.0.0.1:1")
    assert yaml.safe_load(solo.read_text())["current-context"] == ""
