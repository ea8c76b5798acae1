"""kubectl's kubeconfig, kept in step with a Skiff cluster.

`merge(config, server=...)` adds (or refreshes) Skiff's cluster, user and
context, all named `skiff`, as kubectl's own `config set-*` commands do:
every other cluster, context and user stays as it was, and current-context
only moves to `skiff` when none was set or it was already skiff's. The file
is written whole through a temporary file (mode 0600: it will carry
credentials once the API has them).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from skiff.pki import Credentials

NAME = "skiff"
# Where the control plane serves Kubernetes' REST API unless told otherwise (--rest-listen):
# loopback, at the gRPC API's port + 1, so clusters on other API ports do not collide.
DEFAULT_REST_ADDRESS = "127.0.0.1:6444"
# Until `skiff up` has a flag of its own for it, this variable moves the REST port of the
# control plane `up` starts (and the kubeconfig it writes): private clusters in tests use it.
REST_ADDRESS_ENV = "SKIFF_REST_LISTEN"


def rest_address(api_port: int = 6443) -> str:
    """$SKIFF_REST_LISTEN, else 127.0.0.1:<api_port + 1> (6443 -> 6444)."""
    return os.environ.get(REST_ADDRESS_ENV) or f"127.0.0.1:{api_port + 1}"


def default_path() -> Path:
    """$KUBECONFIG's first file, else ~/.kube/config (where kubectl reads)."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first) if first else Path.home() / ".kube" / "config"


def _upsert(entries: list[dict[str, Any]], name: str, key: str, value: dict[str, Any]) -> list[dict[str, Any]]:
    out = [e for e in entries if isinstance(e, dict) and e.get("name") != name]
    return [*out, {"name": name, key: value}]


def _b64(data: bytes) -> str:
    import base64
    return base64.b64encode(data).decode()


def merge(config: dict[str, Any] | None, *, server: str, namespace: str = "",
          credentials: "Credentials | None" = None) -> dict[str, Any]:
    """`config` with Skiff's cluster, user and context added or refreshed; with `credentials`
    (a secure cluster, decision 32) the cluster's CA and the user's client certificate, embedded."""
    config = dict(config or {})
    config.setdefault("apiVersion", "v1")
    config.setdefault("kind", "Config")
    config.setdefault("preferences", {})
    cluster: dict[str, Any] = {"server": server}
    user: dict[str, Any] = {}
    if credentials is not None:
        cluster["certificate-authority-data"] = _b64(credentials.ca)
        user = {"client-certificate-data": _b64(credentials.cert), "client-key-data": _b64(credentials.key)}
    config["clusters"] = _upsert(config.get("clusters") or [], NAME, "cluster", cluster)
    config["users"] = _upsert(config.get("users") or [], NAME, "user", user)
    context = {"cluster": NAME, "user": NAME, **({"namespace": namespace} if namespace else {})}
    config["contexts"] = _upsert(config.get("contexts") or [], NAME, "context", context)
    if not config.get("current-context") or config["current-context"] == NAME:
        config["current-context"] = NAME
    return config


def _load(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    loaded = yaml.safe_load(path.read_text())
    if loaded is not None and not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a kubeconfig (expected a mapping)")
    return loaded


def write(path: Path, *, server: str, credentials: "Credentials | None" = None) -> Path:
    """Merge Skiff's entries into the kubeconfig at `path` (created if absent)."""
    return _save(path, merge(_load(path), server=server, credentials=credentials))


def remove(path: Path, *, server: str) -> bool:
    """`down --purge`: drop Skiff's cluster, user and context from the kubeconfig at `path`,
    as `kubectl config delete-context/-cluster/-user` would, if its cluster still names
    `server` (another cluster's `skiff up` may have taken the name since); the rest of the
    file stays, and no context is current if Skiff's was. True if anything was removed."""
    config = _load(path)
    if not config:
        return False
    ours = [c for c in config.get("clusters") or [] if isinstance(c, dict) and c.get("name") == NAME]
    if not ours or (ours[0].get("cluster") or {}).get("server") != server:
        return False
    for key in ("clusters", "users", "contexts"):
        config[key] = [e for e in config.get(key) or [] if not (isinstance(e, dict) and e.get("name") == NAME)]
    if config.get("current-context") == NAME:
        config["current-context"] = ""
    _save(path, config)
    return True


def _save(path: Path, config: dict[str, Any]) -> Path:
    """Write `config` to `path` atomically, 0600 (it holds a client key)."""
    text = yaml.safe_dump(config, default_flow_style=False, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
