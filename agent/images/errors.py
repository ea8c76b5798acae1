"""Errors of the image subsystem; str(exc) is the user-facing message."""
from __future__ import annotations


class ImageError(Exception):
    """Base class: anything the image store, archives or builder refuse."""


class InvalidReference(ImageError):
    """A reference that is not `[registry/]name[:tag][@sha256:hex]`."""


class ImageNotFound(ImageError):
    """No image under that reference or id."""


class LayerError(ImageError):
    """A layer tar that is hostile or broken (names the entry)."""


class DigestMismatch(ImageError):
    """Content whose sha256 is not the one it was announced with."""
