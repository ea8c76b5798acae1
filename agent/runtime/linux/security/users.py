"""Resolve an image's `User` ("name", "uid", "uid:gid", "name:group") against its own
/etc/passwd and /etc/group, without ever leaving the image's root filesystem.

An image is untrusted input: its /etc/passwd may be a symlink to /etc/shadow
on the host, or to ../../.. . The files are opened with openat2(2) and
RESOLVE_IN_ROOT, so every symlink and ".." is resolved as if the rootfs were
"/" (a chroot's view), and only regular files of modest size are read.

Rules follow Docker/runc: "" means root; a numeric uid need not exist in
passwd (its gid is then 0); a name must exist; an explicit group (name or
number) replaces the primary group and suppresses the supplementary groups
from /etc/group, which otherwise are every group listing the user by name.
"""
from __future__ import annotations

import ctypes
import errno
import os
import stat
from pathlib import Path
from typing import Callable, NamedTuple

_MAX_FILE_BYTES = 4 << 20
_SYS_OPENAT2 = 437            # the same number on x86_64 and aarch64 (generic table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_MAX_SYMLINKS = 40

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class ResolvedUser(NamedTuple):
    uid: int
    gid: int
    supplemental_gids: tuple[int, ...]


class UserLookupError(LookupError):
    """The image's User names someone its passwd/group files do not know."""


def resolve_user(rootfs: Path, user: str) -> ResolvedUser:
    """User ("name", "uid", "uid:gid", "name:group", "" = root) against the
    passwd and group files of a root filesystem directory (or mounted overlay)."""
    return resolve_user_from(read=lambda rel: read_in_root(rootfs, rel), user=user, where=str(rootfs))


def resolve_user_from(*, read: Callable[[str], str], user: str, where: str) -> ResolvedUser:
    """The same rules over any view of an image: read("etc/passwd") returns a
    file's text or raises FileNotFoundError (e.g. a reader over unpacked
    layers that honours whiteouts, when no overlay is mounted yet). `where`
    names the image in errors."""
    user_part, _, group_part = user.strip().partition(":")
    user_part = user_part or "0"
    passwd = _entries(read, "etc/passwd", fields=7)
    groups = _entries(read, "etc/group", fields=4)

    entry = next((e for e in passwd if e[0] == user_part), None)
    if entry is None and user_part.isdigit():
        entry = next((e for e in passwd if e[2] == user_part), None)
        uid = int(user_part)
        gid = int(entry[3]) if entry is not None and entry[3].isdigit() else 0
        name = entry[0] if entry is not None else None
    elif entry is None:
        raise UserLookupError(f"unable to find user {user_part}: no matching entries in {where}/etc/passwd")
    else:
        if not (entry[2].isdigit() and entry[3].isdigit()):
            raise UserLookupError(f"{where}/etc/passwd: bad uid/gid for user {entry[0]!r}")
        uid, gid, name = int(entry[2]), int(entry[3]), entry[0]

    if group_part:
        match = next((g for g in groups if g[0] == group_part), None)
        if match is not None and match[2].isdigit():
            return ResolvedUser(uid, int(match[2]), ())
        if group_part.isdigit():
            return ResolvedUser(uid, int(group_part), ())
        raise UserLookupError(f"unable to find group {group_part}: no matching entries in {where}/etc/group")

    supplemental: list[int] = []
    if name is not None:
        for g in groups:
            if name in g[3].split(",") and g[2].isdigit() and int(g[2]) != gid and int(g[2]) not in supplemental:
                supplemental.append(int(g[2]))
    return ResolvedUser(uid, gid, tuple(supplemental))


def _entries(read: Callable[[str], str], relpath: str, *, fields: int) -> list[list[str]]:
    """Colon-separated records, padded to `fields`; [] if the file is absent."""
    try:
        text = read(relpath)
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":")
        out.append((parts + [""] * fields)[:fields])
    return out


def read_in_root(rootfs: Path, relpath: str) -> str:
    """The text of rootfs/relpath, resolved with rootfs as "/"; a regular file only."""
    try:
        root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        # Not "file absent" (which means: no passwd in the image) but a caller's mistake.
        raise UserLookupError(f"root filesystem {rootfs}: {exc.strerror}") from exc
    try:
        fd = _open_in_root(root_fd, relpath, rootfs=rootfs)
    finally:
        os.close(root_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"{rootfs}/{relpath} is not a regular file")
        if st.st_size > _MAX_FILE_BYTES:
            raise OSError(errno.EFBIG, f"{rootfs}/{relpath} is larger than {_MAX_FILE_BYTES} bytes")
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace", closefd=False) as f:
            return f.read(_MAX_FILE_BYTES)
    finally:
        os.close(fd)


def _open_in_root(root_fd: int, relpath: str, *, rootfs: Path) -> int:
    how = _OpenHow(os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK, 0,
                   _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(_SYS_OPENAT2, root_fd, relpath.encode(), ctypes.byref(how), ctypes.sizeof(how))
    if fd >= 0:
        return fd
    err = ctypes.get_errno()
    if err != errno.ENOSYS:
        raise OSError(err, f"openat2({rootfs}, {relpath!r}, RESOLVE_IN_ROOT): {os.strerror(err)}")
    return _open_walking(root_fd, relpath, rootfs=rootfs)


def _open_walking(root_fd: int, relpath: str, *, rootfs: Path) -> int:
    """Kernels before 5.6: resolve component by component, symlinks restarted
    from the root and ".." clamped at it, then open the result with O_NOFOLLOW."""
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = "/".join(resolved + [part])
        try:
            target = os.readlink(candidate, dir_fd=root_fd)
        except OSError as exc:
            if exc.errno == errno.EINVAL:   # not a symlink
                resolved.append(part)
                continue
            raise
        links += 1
        if links > _MAX_SYMLINKS:
            raise OSError(errno.ELOOP, f"{rootfs}/{relpath}: too many symlinks")
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return os.open("/".join(resolved) or ".", os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK,
                   dir_fd=root_fd)
