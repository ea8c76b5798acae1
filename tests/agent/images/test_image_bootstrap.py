"""Offline base images: busybox from the static binary, the apt-source
reading debootstrap relies on, and the debian cache."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from agent.images import bootstrap
from agent.images.errors import ImageError

pytestmark = pytest.mark.root


def test_busybox_image(store):
    assert bootstrap.bootstrap_busybox(store=store) == "busybox:latest"
    img = store.resolve("busybox")
    root = img.lower_dirs[0]
    assert img.config.cmd == ("sh",) and any(e.startswith("PATH=") for e in img.config.env)
    assert os.access(root / "bin/busybox", os.X_OK)
    for applet in ("bin/sh", "bin/ls", "bin/cat", "bin/echo", "usr/bin/wget", "sbin/ip"):
        assert os.readlink(root / applet) == "/bin/busybox", applet
    assert "root:x:0:0:" in (root / "etc/passwd").read_text()
    assert "nogroup:x:65534:" in (root / "etc/group").read_text()
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    # The applets really run from the layer (chroot as the runtime would pivot_root).
    r = subprocess.run(["chroot", str(root), "/bin/sh", "-c", "echo $((6*7))"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "42"
    # Cached: a second call makes nothing new.
    layers = sorted(os.listdir(store.layers))
    image_id = img.id
    bootstrap.bootstrap_busybox(store=store)
    assert sorted(os.listdir(store.layers)) == layers and store.resolve("busybox").id == image_id


def test_apt_mirror_deb822_and_classic(tmp_dir):
    d = tmp_dir / "apt"
    (d / "sources.list.d").mkdir(parents=True)
    (d / "sources.list.d/debian.sources").write_text(
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: trixie\nEnabled: no\n")
    assert bootstrap.apt_mirror(suite="bookworm", sources=d) == "http://mirror.example/debian"
    (d / "sources.list").write_text("deb [arch=amd64] http://classic.example/debian trixie main\n")
    assert bootstrap.apt_mirror(suite="trixie", sources=d) == "http://classic.example/debian"
    with pytest.raises(ImageError) as err:
        bootstrap.apt_mirror(suite="sid", sources=d)
    assert "sid" in str(err.value)


def test_debian_is_cached_when_tagged(store, monkeypatch):
    bootstrap.bootstrap_busybox(store=store, ref="debian-python:bookworm")
    # Were it to run debootstrap now, it would fail: the tag alone must satisfy it.
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert bootstrap.bootstrap_debian(store=store, include=("python3",)) == "debian-python:bookworm"
    with pytest.raises(ImageError) as err:
        bootstrap.bootstrap_debian(store=store, suite="bookworm", ref="debian:other")
    assert "debootstrap not found" in str(err.value)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SKIFF_TEST_DEBOOTSTRAP") != "1" or not shutil.which("debootstrap"),
                    reason="downloads from the Debian mirror (~1 min): set SKIFF_TEST_DEBOOTSTRAP=1")
def test_debootstrap_python(store):
    ref = bootstrap.bootstrap_debian(store=store, include=("python3",))
    root = store.resolve(ref).lower_dirs[0]
    r = subprocess.run(["chroot", str(root), "python3", "-c", "import http.server; print('ok')"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "ok", r.stderr
