"""Where the CLI finds the control plane: --server, SKIFF_SERVER, the config
file `skiff up` writes (or SKIFF_CONFIG's), the default."""
from __future__ import annotations

import pytest

from skiff.config import ClientConfig, ConfigError, config_path, load_config, resolve_server, write_config


def test_precedence(tmp_path):
    cfg = tmp_path / "config"
    env = {"SKIFF_CONFIG": str(cfg)}
    assert resolve_server(flag=None, env=env) == "127.0.0.1:6443"
    write_config(path=cfg, config=ClientConfig(server="10.0.0.1:7000"))
    assert resolve_server(flag=None, env=env) == "10.0.0.1:7000"
    assert resolve_server(flag=None, env={**env, "SKIFF_SERVER": "10.0.0.2:7000"}) == "10.0.0.2:7000"
    assert resolve_server(flag="10.0.0.3:7000", env={**env, "SKIFF_SERVER": "x"}) == "10.0.0.3:7000"


def test_default_path_is_under_home(tmp_path):
    assert config_path(env={"HOME": str(tmp_path)}) == tmp_path / ".skiff" / "config"
    write_config(path=config_path(env={"HOME": str(tmp_path)}), config=ClientConfig(server="h:1"))
    assert (tmp_path / ".skiff" / "config").read_text() == "server: h:1\n"


def test_broken_config_names_the_file(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text("- not\n- a mapping\n")
    with pytest.raises(ConfigError, match=str(cfg)):
        load_config(path=cfg)
    cfg.write_text("server: [\n")
    with pytest.raises(ConfigError, match=str(cfg)):
        load_config(path=cfg)


def test_contexts_one_per_cluster_and_switching(tmp_path):
    from skiff.config import load_contexts, use_context, write_context
    cfg = tmp_path / "config"
    write_config(path=cfg, config=ClientConfig(server="10.0.0.1:6443"))   # the one-cluster form of before
    write_context(path=cfg, name="lab", config=ClientConfig(server="10.0.0.9:6443", certificate_authority="/p/ca.crt",
                                                            client_certificate="/p/admin.crt",
                                                            client_key="/p/admin.key"))
    current, contexts = load_contexts(path=cfg)
    assert current == "lab" and list(contexts) == ["default", "lab"]
    assert load_config(path=cfg).secure and load_config(path=cfg).server == "10.0.0.9:6443"
    use_context(path=cfg, name="default")
    assert load_config(path=cfg) == ClientConfig(server="10.0.0.1:6443")
    with pytest.raises(ConfigError, match='no context exists with the name: "nope"'):
        use_context(path=cfg, name="nope")


def test_a_current_context_that_is_not_there_is_named(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text("current-context: gone\ncontexts:\n- name: a\n  server: h:1\n")
    with pytest.raises(ConfigError, match='current-context "gone" is not one of its contexts'):
        load_config(path=cfg)


def test_the_config_commands(tmp_path, monkeypatch, capsys):
    from skiff.cli.main import main
    from skiff.config import write_context
    cfg = tmp_path / "config"
    monkeypatch.setenv("SKIFF_CONFIG", str(cfg))
    write_context(path=cfg, name="one", config=ClientConfig(server="h:1"))
    write_context(path=cfg, name="two", config=ClientConfig(server="h:2", certificate_authority="/p/ca.crt",
                                                            client_certificate="/p/admin.crt", client_key="/p/k"))
    assert main(["config", "get-contexts"]) == 0
    assert capsys.readouterr().out == ("CURRENT   NAME   SERVER   AUTHINFO\n"
                                       "          one    h:1\n"
                                       "*         two    h:2      admin\n")
    assert main(["config", "use-context", "one"]) == 0
    assert capsys.readouterr().out == 'Switched to context "one".\n'
    assert main(["config", "current-context"]) == 0
    assert capsys.readouterr().out == "one\n"
    assert main(["config", "use-context", "three"]) == 1
    assert capsys.readouterr().err == 'error: no context exists with the name: "three"\n'


def test_remove_context_as_down_purge_does(tmp_path):
    from skiff.config import load_contexts, remove_context, write_context
    cfg = tmp_path / "config"
    write_context(path=cfg, name="lab", config=ClientConfig(server="10.0.0.1:6443"))
    write_context(path=cfg, name="skiff", config=ClientConfig(server="127.0.0.1:6443"))
    # Another cluster's context of the same name (another server) is not this cluster's to remove.
    assert not remove_context(path=cfg, name="skiff", server="127.0.0.1:7443")
    assert remove_context(path=cfg, name="skiff", server="127.0.0.1:6443")
    current, contexts = load_contexts(path=cfg)
    assert (current, list(contexts)) == ("", ["lab"])   # the current one is gone: none is current
    with pytest.raises(ConfigError, match="skiff config use-context NAME"):
        load_config(path=cfg)
    assert remove_context(path=cfg, name="lab")
    assert not cfg.exists()   # the last context takes the file with it


def test_connect_uses_the_context_s_server_and_credentials(tmp_path):
    from skiff import pki
    from skiff.config import connect, write_context
    files = pki.ClusterPki(tmp_path / "pki")
    files.ensure_cluster(api_addresses=[], service_cluster_ip="10.96.0.1")
    cfg = tmp_path / "config"
    write_context(path=cfg, name="plain", config=ClientConfig(server="127.0.0.1:1"))
    write_context(path=cfg, name="secure", config=ClientConfig(
        server="127.0.0.1:2", certificate_authority=str(files.ca_file),
        client_certificate=str(files.cert_file("admin")), client_key=str(files.key_file("admin"))))
    secure = connect(path=cfg)
    assert (secure.address, secure.credentials) == ("127.0.0.1:2", files.credentials("admin"))
    plain = connect(path=cfg, context="plain")
    assert (plain.address, plain.credentials) == ("127.0.0.1:1", None)
    with pytest.raises(ConfigError, match='no context "other"'):
        connect(path=cfg, context="other")
