"""Images on a node: the OCI store, archives, registries, and the Dockerfile builder.

    store.py        ImageStore: OCI layout + layers unpacked once (resolve() is what pod workers call)
    layers.py       safe tar <-> layer directory (whiteouts, hostile input refused)
    reference.py    Docker-style reference normalization
    archive.py      docker save / OCI archive load & save, docker import
    registry.py     pull / push over the OCI distribution API
    bootstrap.py    offline base images: busybox (busybox-static), debian (debootstrap)
    dockerfile.py   the Dockerfile parser; shellwords.py its substitution
    builder.py      the build; buildcontext.py (COPY/ADD), buildrun.py (RUN), imageconfig.py
    types.py        Image / ImageConfig, the shapes other packages consume
"""
from agent.images.errors import ImageError, ImageNotFound
from agent.images.store import ImageStore
from agent.images.types import Image, ImageConfig

__all__ = ["Image", "ImageConfig", "ImageError", "ImageNotFound", "ImageStore"]
