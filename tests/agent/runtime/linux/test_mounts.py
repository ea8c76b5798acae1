"""Volumes inside the rootfs: hostPath binds, emptyDir (disk and Memory),
read-only mounts, layered images, and no escape through image symlinks."""
from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import pytest

from agent.runtime.interface import Mount

pytestmark = pytest.mark.root


def test_host_path_bind_and_read_only(runtime):
    vol = runtime.tmp / "vol"
    vol.mkdir()
    (vol / "in.txt").write_text("from the host\n")
    st, log, _ = asyncio.run(runtime.run(
        ("sh", "-c", "cat /data/in.txt; echo written > /data/out.txt; "
                     "touch /ro/x 2>/dev/null && echo ro=writable || echo ro=denied"),
        mounts=(Mount(target="/data", source=str(vol)),
                Mount(target="/ro", source=str(vol), read_only=True))))
    assert st.exit_code == 0, log
    assert log.split("\n")[:2] == ["from the host", "ro=denied"]
    assert (vol / "out.txt").read_text() == "written\n"
    assert not (vol / "x").exists()


def test_empty_dir_in_memory_is_a_tmpfs(runtime):
    st, log, _ = asyncio.run(runtime.run(
        ("sh", "-c", "grep ' /cache ' /proc/mounts | cut -d' ' -f3"),
        mounts=(Mount(target="/cache", kind="tmpfs", options=("size=1m",)),)))
    assert log.strip() == "tmpfs"


def test_layers_stack_top_first_and_writes_go_to_the_upper_dir(runtime, tmp_path):
    top = tmp_path / "top"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "motd").write_text("top layer\n")
    upper = tmp_path / "upper"
    st, log, cfg = asyncio.run(runtime.run(
        ("sh", "-c", "cat /etc/motd; echo new > /created; ls /bin/busybox"),
        lower_dirs=(runtime.layer, top), upper_dir=upper))
    assert log.split() == ["top", "layer", "/bin/busybox"]
    asyncio.run(runtime.rt.remove(cfg.id))
    # A caller-owned upper dir is kept, holding exactly the container's diff.
    assert (upper / "created").read_text() == "new\n"
    assert not (top / "created").exists() and not (runtime.layer / "created").exists()


@pytest.mark.parametrize("link", ["/", "..", "../../../../..", "/../.."])
def test_image_symlink_used_as_mount_target_stays_inside(runtime, tmp_path, link):
    evil = tmp_path / "evil-layer"
    evil.mkdir()
    os.symlink(link, evil / "escape")
    name = f"skiff-escape-{secrets.token_hex(4)}"
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "marker").write_text("volume\n")
    st, log, _ = asyncio.run(runtime.run(
        ("sh", "-c", f"cat /{name}/marker /{name}/x/marker"),
        lower_dirs=(runtime.layer, evil),
        mounts=(Mount(target=f"/escape/{name}", source=str(vol)),
                Mount(target=f"/escape/escape/{name}/x", source=str(vol)))))
    # The link resolved as if the rootfs were `/`: the mount is inside it...
    assert st.exit_code == 0, log
    assert log == "volume\nvolume\n"
    # ...and nothing was created or mounted on the host.
    for base in ("/", str(tmp_path), str(tmp_path.parent), str(runtime.tmp)):
        assert not Path(base, name).exists()
    with open("/proc/self/mountinfo") as f:
        assert name not in f.read()


def test_resolve_in_root_clamps_symlinks(tmp_path):
    from agent.runtime.linux.rootfs import resolve_in_root
    root = tmp_path / "root"
    (root / "inner").mkdir(parents=True)
    os.symlink("/", root / "abs")
    os.symlink("../../../..", root / "inner" / "rel")
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for path in ("abs/made/dir", "inner/rel/made2"):
            fd = resolve_in_root(rootfd, path, create="dir")
            try:
                real = os.readlink(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
            assert real == str(root / path.split("/", 2 if path.startswith("inner") else 1)[-1]), real
        fd = resolve_in_root(rootfd, "abs/file.txt", create="file")
        os.close(fd)
        assert (root / "file.txt").is_file()
    finally:
        os.close(rootfd)
    assert not Path("/made").exists() and not (tmp_path / "made2").exists()
