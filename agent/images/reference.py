"""Image references, normalized the way Docker does.

`busybox` -> `docker.io/library/busybox:latest`; `me/app:1` ->
`docker.io/me/app:1`; `localhost:5000/app` -> `localhost:5000/app:latest`;
`app@sha256:<hex>` keeps its digest and gets no default tag. The store keys its
tag database on the normalized string; the CLI prints the familiar form.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from agent.images.errors import InvalidReference

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_DOMAIN = re.compile(r"^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str                 # "library/busybox"
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def familiar_name(self) -> str:
        """The repository as `docker images` shows it (docker.io/library/ dropped)."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path.removeprefix("library/")
        return self.name

    def familiar(self) -> str:
        out = self.familiar_name()
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str) -> Reference:
    """Parse and normalize; raises InvalidReference naming what is wrong."""
    if not text or text != text.strip():
        raise InvalidReference(f"invalid reference format: {text!r}")
    rest, digest = text, None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not _DIGEST.match(digest):
            raise InvalidReference(f"invalid reference format: {text!r}: bad digest {digest!r}")
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, _, tag = rest.rpartition(":")
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid reference format: {text!r}: bad tag {tag!r}")
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        if not _DOMAIN.match(first):
            raise InvalidReference(f"invalid reference format: {text!r}: bad registry {first!r}")
        domain, path = first, remainder
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain in ("index.docker.io", "registry-1.docker.io"):
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            raise InvalidReference(
                f"invalid reference format: {text!r}: repository name must be lowercase "
                f"letters, digits and separators (got {component!r})")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def normalize(text: str) -> str:
    return str(parse_reference(text))
