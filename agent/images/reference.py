"""Image references, normalized the way Docker does: the grammar is
skiff/api/imageref.py (the API validates pod images with it); here it raises
the image subsystem's InvalidReference.

`busybox` -> `docker.io/library/busybox:latest`; `me/app:1` ->
`docker.io/me/app:1`; `localhost:5000/app` -> `localhost:5000/app:latest`;
`app@sha256:<hex>` keeps its digest and gets no default tag.
"""
from __future__ import annotations

from agent.images.errors import InvalidReference
from skiff.api import imageref
from skiff.api.imageref import DEFAULT_DOMAIN, DEFAULT_TAG, Reference

__all__ = ["DEFAULT_DOMAIN", "DEFAULT_TAG", "Reference", "normalize", "parse_reference"]


def parse_reference(text: str) -> Reference:
    """Parse and normalize; raises InvalidReference naming what is wrong."""
    try:
        return imageref.parse_reference(text)
    except imageref.InvalidReference as exc:
        raise InvalidReference(str(exc)) from None


def normalize(text: str) -> str:
    return str(parse_reference(text))
