"""Image references: the OCI/Docker reference grammar, normalized the way Docker does.

`busybox` -> `docker.io/library/busybox:latest`; `me/app:1` ->
`docker.io/me/app:1`; `localhost:5000/app` -> `localhost:5000/app:latest`;
`app@sha256:<hex>` keeps its digest and gets no default tag. The store keys its
tag database on the normalized string; the CLI prints the familiar form.

Shared by the API's Pod validation (a `spec.containers[*].image` that is not a
reference is refused before the agent ever resolves it) and the agent's image
store (agent/images/reference.py re-exports it with the image subsystem's error).
"""
from __future__ import annotations

import re
from dataclasses import dataclass


DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
NAME_MAX_CHARS = 255   # the distribution spec's limit on domain + path
# fullmatch below, never `$`: it would let a trailing newline through ("a.com\n/x").
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_DOMAIN = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
                     r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?")


class InvalidReference(ValueError):
    """A reference that is not `[registry/]name[:tag][@sha256:hex]`."""


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
        raise InvalidReference(f"invalid reference format: {text[:300]!r}")
    if len(text) > 1024:   # well beyond any valid one: do not echo or scan it
        raise InvalidReference(f"invalid reference format: {len(text)} characters, far too long")
    rest, digest = text, None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not _DIGEST.fullmatch(digest):
            raise InvalidReference(f"invalid reference format: {text!r}: bad digest {digest!r}")
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, _, tag = rest.rpartition(":")
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"invalid reference format: {text!r}: bad tag {tag!r}")
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        if not _DOMAIN.fullmatch(first):
            raise InvalidReference(f"invalid reference format: {text!r}: bad registry {first!r}")
        domain, path = first, remainder
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain in ("index.docker.io", "registry-1.docker.io"):
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    for component in path.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise InvalidReference(
                f"invalid reference format: {text!r}: repository name must be lowercase "
                f"letters, digits and separators (got {component!r})")
    if len(domain) + 1 + len(path) > NAME_MAX_CHARS:
        raise InvalidReference(f"invalid reference format: repository name must not be more than "
                               f"{NAME_MAX_CHARS} characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def normalize(text: str) -> str:
    return str(parse_reference(text))
