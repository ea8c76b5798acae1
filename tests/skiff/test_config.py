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
