"""The client's configuration: where the `skiff` CLI finds the control plane.

`skiff up` writes ~/.skiff/config (YAML: contexts, one per cluster, each with
`server: HOST:PORT`, and the current one; `skiff config use-context` switches,
as kubectl's); every other
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


def _read(path: Path) -> dict | None:
    import yaml   # here, not at the top: commands that never read the config (build) skip its import
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the client config {path}: {exc}") from None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"the client config {path} must be a mapping like 'server: 127.0.0.1:6443'")
    return data


def _entry(data: dict, path: Path, where: str = "") -> ClientConfig:
    if not isinstance(data.get("server", ""), str):
        raise ConfigError(f"the client config {path}{where}: server must be HOST:PORT")
    files = {attr: data.get(key) or "" for key, attr in _CREDENTIAL_KEYS}
    if not all(isinstance(v, str) for v in files.values()):
        raise ConfigError(f"the client config {path}{where}: certificate-authority, client-certificate and "
                          "client-key must be file paths")
    return ClientConfig(server=data.get("server") or DEFAULT_SERVER, **files)


def load_contexts(*, path: Path) -> tuple[str, dict[str, ClientConfig]]:
    """(current context, contexts by name). A file in the one-cluster form (`server:` at
    the top, as `skiff up` wrote before contexts) is one context named "default"."""
    data = _read(path)
    if data is None:
        return "", {}
    if "contexts" not in data:
        return "default", {"default": _entry(data, path)}
    contexts = data.get("contexts") or []
    if not isinstance(contexts, list) or not all(isinstance(c, dict) and c.get("name") for c in contexts):
        raise ConfigError(f"the client config {path}: contexts must be a list of mappings with a name")
    out = {str(c["name"]): _entry(c, path, f' (context "{c["name"]}")') for c in contexts}
    return str(data.get("current-context") or ""), out


def load_config(*, path: Path) -> ClientConfig | None:
    """The current context of the config in `path`, or None when there is no such file."""
    current, contexts = load_contexts(path=path)
    if not contexts:
        return None
    if current not in contexts:
        raise ConfigError(f'the client config {path}: current-context "{current}" is not one of its contexts '
                          f'({", ".join(sorted(contexts))}); `skiff config use-context NAME` picks one')
    return contexts[current]


def _as_dict(config: ClientConfig) -> dict:
    return {"server": config.server, **{key: getattr(config, attr) for key, attr in _CREDENTIAL_KEYS
                                        if getattr(config, attr)}}


def _write(path: Path, data: dict) -> None:
    """Atomically (rename), so a concurrent reader never sees half a file."""
    import yaml
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, default_flow_style=False, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)


def write_config(*, path: Path, config: ClientConfig) -> None:
    """The one-cluster form: `server:` (and a secure cluster's files) at the top."""
    _write(path, _as_dict(config))


def write_context(*, path: Path, name: str, config: ClientConfig) -> None:
    """Add or refresh context `name` and make it current; the file's other contexts stay
    (a one-cluster file becomes context "default" beside it, unless it is the same server)."""
    current, contexts = load_contexts(path=path)
    if list(contexts) == ["default"] and name != "default" and contexts["default"].server == config.server:
        contexts = {}   # the same cluster, written before contexts had names
    contexts[name] = config
    _write(path, {"current-context": name,
                  "contexts": [{"name": n, **_as_dict(c)} for n, c in contexts.items()]})


def use_context(*, path: Path, name: str) -> None:
    current, contexts = load_contexts(path=path)
    if name not in contexts:
        raise ConfigError(f'no context exists with the name: "{name}"')
    if list(contexts) == ["default"]:
        return   # the one-cluster form: "default" is all it holds
    _write(path, {"current-context": name,
                  "contexts": [{"name": n, **_as_dict(c)} for n, c in contexts.items()]})


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
    path = config_path(env=env)
    config = load_config(path=path)
    return None if config is None else credentials_of(config, path=path)


def credentials_of(config: ClientConfig, *, path: Path):
    """The files a context names, read (skiff.pki.Credentials), or None for an insecure one."""
    if not config.secure:
        return None
    from skiff.pki import Credentials, PkiError
    try:
        return Credentials.load(ca=config.certificate_authority, cert=config.client_certificate or None,
                                key=config.client_key or None)
    except PkiError as exc:
        raise ConfigError(f"the client config {path}: {exc}") from None


def connect(*, path: Path, context: str = ""):
    """An ApiClient (skiff.client) for a context of the client config at `path` (default: its
    current one) with that context's server and credentials, as the CLI connects; what test
    harnesses and benchmarks use (kubernetes' `config.new_client_from_config`)."""
    from skiff.client import ApiClient
    current, contexts = load_contexts(path=path)
    name = context or current
    if name not in contexts:
        raise ConfigError(f'the client config {path}: no context "{name}" (it has {", ".join(sorted(contexts))})')
    return ApiClient(contexts[name].server, credentials=credentials_of(contexts[name], path=path))


def remove_context(*, path: Path, name: str, server: str = "") -> bool:
    """`down --purge`: drop context `name` (only if it names `server`, when given), as
    `kubectl config delete-context`; the file goes with its last context. If it was the
    current one, none is current after (the CLI then asks for `skiff config use-context`)."""
    current, contexts = load_contexts(path=path)
    if name not in contexts or (server and contexts[name].server != server):
        return False
    del contexts[name]
    if not contexts:
        path.unlink(missing_ok=True)
        return True
    _write(path, {"current-context": current if current in contexts else "",
                  "contexts": [{"name": n, **_as_dict(c)} for n, c in contexts.items()]})
    return True
