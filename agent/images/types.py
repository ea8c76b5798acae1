"""What the rest of Skiff needs to know about a local image.

The image store (agent/images/store.py) produces these; the pod workers and the
builder consume them. Kept apart so a consumer needs no store internals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ImageConfig:
    """The OCI image config's `config` section, as a container run uses it."""
    env: tuple[str, ...] = ()              # "KEY=VALUE"
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    working_dir: str = ""
    user: str = ""                         # "uid[:gid]" or "name[:group]"
    exposed_ports: tuple[str, ...] = ()    # "5000/tcp"
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""                  # "SIGTERM"
    volumes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Image:
    id: str                          # "sha256:<config digest>"
    reference: str                   # the normalized reference it was found by
    lower_dirs: tuple[Path, ...]     # unpacked layers, lowest first (overlay lowerdir order reversed)
    config: ImageConfig
    size: int = 0
