"""Fixtures for the image tests: a private store per test, and helpers that
build layer tars in memory (including hostile ones)."""
from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest

from agent.images.store import ImageStore


@pytest.fixture
def store():
    root = Path(tempfile.mkdtemp(prefix="skiff-test-images-"))
    try:
        yield ImageStore(root=root / "images")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tmp_dir():
    root = Path(tempfile.mkdtemp(prefix="skiff-test-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def make_tar(entries: list[dict], *, gzip: bool = False) -> bytes:
    """entries: {"name", "type" ("file"|"dir"|"symlink"|"hardlink"|"chr"|"blk"|"fifo"),
    "data", "link", "mode", "uid", "gid"}."""
    buf = io.BytesIO()
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
             "fifo": tarfile.FIFOTYPE}
    with tarfile.open(fileobj=buf, mode="w:gz" if gzip else "w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            ti.type = types[e.get("type", "file")]
            ti.mode = e.get("mode", 0o755 if ti.type == tarfile.DIRTYPE else 0o644)
            ti.uid, ti.gid = e.get("uid", 0), e.get("gid", 0)
            ti.linkname = e.get("link", "")
            ti.mtime = 1700000000
            data = e.get("data", b"")
            if ti.type == tarfile.REGTYPE:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(ti)
    return buf.getvalue()


def store_is_empty(store: ImageStore) -> bool:
    """Nothing of a rejected layer may remain: no blob, no layer dir, no temp file."""
    return (not any(store.blobs.iterdir())
            and not [p for p in store.layers.iterdir() if not p.name.endswith(".lock")]
            and not any(store.tmp.iterdir()))
