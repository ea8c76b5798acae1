"""resolve_user against image-like root filesystems, including hostile ones."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.runtime.linux.security import ResolvedUser, UserLookupError, resolve_user
from agent.runtime.linux.security import users

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
# a comment
web:x:1001:1001::/srv:/bin/sh
"""
GROUP = """root:x:0:
wheel:x:10:root,app
app:x:1000:
web:x:1001:
staff:x:50:app,web
docker:x:999:app
"""


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


@pytest.mark.parametrize("user, expected", [
    ("", (0, 0, (10,))),
    ("root", (0, 0, (10,))),
    ("app", (1000, 1000, (10, 50, 999))),
    ("1000", (1000, 1000, (10, 50, 999))),          # a uid in passwd brings its groups
    ("app:staff", (1000, 50, ())),                   # an explicit group: only that group
    ("1000:50", (1000, 50, ())),
    ("web:999", (1001, 999, ())),
    ("4242", (4242, 0, ())),                         # a uid passwd does not know: gid 0
    ("4242:4242", (4242, 4242, ())),
])
def test_user_forms(rootfs, user, expected):
    assert resolve_user(rootfs, user) == ResolvedUser(*expected)


@pytest.mark.parametrize("user, missing", [("nobody", "user nobody"), ("app:nogroup", "group nogroup")])
def test_unknown_names_are_errors(rootfs, user, missing):
    with pytest.raises(UserLookupError, match=missing):
        resolve_user(rootfs, user)


def test_image_without_passwd_still_takes_numeric_ids(tmp_path):
    (tmp_path / "empty").mkdir()
    assert resolve_user(tmp_path / "empty", "65534:65534") == ResolvedUser(65534, 65534, ())
    with pytest.raises(UserLookupError):
        resolve_user(tmp_path / "empty", "app")


def _hostile(tmp_path: Path, link_target: str) -> Path:
    """A rootfs whose /etc/passwd is a symlink; a decoy passwd waits outside it."""
    outside = tmp_path / "host-etc"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").symlink_to(link_target)
    return root


@pytest.mark.parametrize("link_target", ["../../host-etc/passwd", "{deep}/host-etc/passwd"])
def test_symlinks_cannot_climb_out_of_the_rootfs(tmp_path, link_target):
    # {deep}: up past "/" and back down to the decoy by its absolute host path.
    root = _hostile(tmp_path, link_target.format(deep="../" * 40 + str(tmp_path).lstrip("/")))
    assert (root / "etc" / "passwd").read_text().startswith("evil")   # the host would follow it
    with pytest.raises(UserLookupError):
        resolve_user(root, "evil")


def test_absolute_symlinks_resolve_inside_the_rootfs(tmp_path):
    root = _hostile(tmp_path, "/usr/lib/passwd")      # on the host this path does not exist
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "passwd").write_text("svc:x:321:321::/:/bin/sh\n")
    assert resolve_user(root, "svc") == ResolvedUser(321, 321, ())


def test_the_fallback_walk_keeps_to_the_rootfs_too(tmp_path):
    root = _hostile(tmp_path, "../../host-etc/passwd")
    (root / "data").mkdir()
    (root / "data" / "passwd").write_text("svc:x:321:321::/:/bin/sh\n")
    (root / "etc" / "group").symlink_to("/data/passwd")
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(FileNotFoundError):
            users._open_walking(root_fd, "etc/passwd", rootfs=root)
        fd = users._open_walking(root_fd, "etc/group", rootfs=root)
        try:
            assert os.read(fd, 100).startswith(b"svc:")
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)


def test_a_fifo_or_directory_as_passwd_is_refused_not_waited_on(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.mkfifo(root / "etc" / "passwd")
    with pytest.raises(OSError, match="not a regular file"):
        resolve_user(root, "app")


def test_any_reader_can_back_the_lookup():
    from agent.runtime.linux.security import resolve_user_from

    files = {"etc/passwd": PASSWD, "etc/group": GROUP}

    def read(rel: str) -> str:
        if rel not in files:
            raise FileNotFoundError(rel)
        return files[rel]

    assert resolve_user_from(read=read, user="web", where="img") == ResolvedUser(1001, 1001, (50,))
    with pytest.raises(UserLookupError, match="img"):
        resolve_user_from(read=read, user="ghost", where="img")


def test_a_missing_rootfs_is_an_error_not_an_empty_image(tmp_path):
    with pytest.raises(UserLookupError, match="root filesystem"):
        resolve_user(tmp_path / "nowhere", "0")
