"""The client's configuration: where the `skiff` CLI finds the control plane.

`skiff up` writes ~/.skiff/config (YAML, `server: HOST:PORT`); every other
command resolves the address in kubectl's order of precedence: the `--server`
flag, then the SKIFF_SERVER environment variable, then the config file
(SKIFF_CONFIG names another one), then the default 127.0.0.1:6443.

A secure cluster (`skiff up --secure`, decision 32) also writes the files of its
CA and of the admin's client certificate and key (`certificate-authority`,
`client-certificate`, `client-key`, as a kubeconfig names them); the CLI then
talks TLS and refuses a server whose certificate that CA did not sign.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


DEFAULT_SERVER = "127.0.0.1:6443"


class ConfigError(Exception):
    """The config file exists but cannot be used; the message names the file."""


@dataclass(frozen=True)
class ClientConfig:
    server: str = DEFAULT_SERVER
    certificate_authority: str = ""   # paths; all three set for a secure cluster
    client_certificate: str = ""
    client_key: str = ""

    @property
    def secure(self) -> bool:
        return bool(self.certificate_authority)


_CREDENTIAL_KEYS = (("certificate-authority", "certificate_authority"), ("client-certificate", "client_certificate"),
                    ("client-key", "client_key"))


def config_path(*, env: Mapping[str, str] = os.environ) -> Path:
    """SKIFF_CONFIG, else ~/.skiff/config."""
    if env.get("SKIFF_CONFIG"):
        return Path(env["SKIFF_CONFIG"])
    return Path(env.get("HOME") or Path.home()) / ".skiff" / "config"


def load_config(*, path: Path) -> ClientConfig | None:
    """The config in `path`, or None when there is no such file."""
    import yaml   # here, not at the top: commands that never read the config (build) skip its import
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the client config {path}: {exc}") from None
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("server", ""), str):
        raise ConfigError(f"the client config {path} must be a mapping like 'server: 127.0.0.1:6443'")
    files = {attr: data.get(key) or "" for key, attr in _CREDENTIAL_KEYS}
    if not all(isinstance(v, str) for v in files.values()):
        raise ConfigError(f"the client config {path}: certificate-authority, client-certificate and client-key "
                          "must be file paths")
    return ClientConfig(server=data.get("server") or DEFAULT_SERVER, **files)


def write_config(*, path: Path, config: ClientConfig) -> None:
    """Write atomically (rename), so a concurrent reader never sees half a file."""
    import yaml
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = {"server": config.server, **{key: getattr(config, attr) for key, attr in _CREDENTIAL_KEYS
                                        if getattr(config, attr)}}
    tmp.write_text(yaml.safe_dump(data, default_flow_style=False), encoding="utf-8")
    os.replace(tmp, path)


def resolve_server(*, flag: str | None, env: Mapping[str, str] = os.environ) -> str:
    """The control plane address to use, by precedence (see the module docstring)."""
    if flag:
        return flag
    if env.get("SKIFF_SERVER"):
        return env["SKIFF_SERVER"]
    config = load_config(path=config_path(env=env))
    return config.server if config else DEFAULT_SERVER


def resolve_credentials(*, env: Mapping[str, str] = os.environ):
    """The CA and client certificate the config file names (skiff.pki.Credentials), or None:
    kept whichever server --server or SKIFF_SERVER names, as kubectl keeps the user's."""
    config = load_config(path=config_path(env=env))
    if config is None or not config.secure:
        return None
    from skiff.pki import Credentials, PkiError
    try:
        return Credentials.load(ca=config.certificate_authority, cert=config.client_certificate or None,
                                key=config.client_key or None)
    except PkiError as exc:
        raise ConfigError(f"the client config {config_path(env=env)}: {exc}") from None
