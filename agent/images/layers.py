"""Layer tars <-> unpacked layer directories, safely.

`extract_layer` unpacks one OCI layer tar (plain or gzip) into a directory that
becomes an overlay lower dir. The input is hostile until proven otherwise:
absolute names, `..`, writes through a symlink, symlinks or hardlinks that
escape the layer, and device nodes are refused with a LayerError naming the
entry. OCI whiteouts are the one exception and become what overlayfs reads:
`.wh.NAME` -> a char 0/0 device at NAME, `.wh..wh..opq` -> the directory's
`trusted.overlay.opaque=y` xattr.

`write_layer_tar` is the reverse, for directories Skiff made (a COPY step, an
overlay upper dir after RUN): whiteouts go back to `.wh.` entries.

Both stream and hash as they go; the caller decides where the result lives
(agent.images.store renames a fully-extracted temp dir into place).
"""
from __future__ import annotations

import hashlib
import io
import os
import posixpath
import stat
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, IO

if TYPE_CHECKING:
    import tarfile

from agent.images.errors import LayerError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
# xattrs worth carrying in a layer (file capabilities make ping work).
_KEPT_XATTR_PREFIXES = ("security.capability", "user.")


class HashingReader:
    """A read-only file wrapper that hashes everything read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.sha.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def hexdigest(self) -> str:
        return self.sha.hexdigest()


def _clean_name(name: str) -> str:
    """The entry's path relative to the layer root, or raise LayerError."""
    if name.startswith("/"):
        raise LayerError(f"layer entry {name!r}: absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"layer entry {name!r}: path contains '..'")
    return "/".join(parts)


def _inside(rel: str) -> bool:
    norm = posixpath.normpath(rel)
    return norm != ".." and not norm.startswith("../") and not norm.startswith("/")


def _check_parents(root: Path, rel: str, entry: str) -> None:
    """Refuse to write through a symlink in the layer (the classic escape)."""
    cur = root
    for part in rel.split("/")[:-1]:
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            raise LayerError(f"layer entry {entry!r}: parent {part!r} is a symlink")
        if not stat.S_ISDIR(st.st_mode):
            raise LayerError(f"layer entry {entry!r}: parent {part!r} is not a directory")


def _remove_existing(path: Path, *, keep_dir: bool) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return
        import shutil
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _ensure_parent(root: Path, rel: str) -> None:
    parent = (root / rel).parent
    if not parent.exists():
        parent.mkdir(mode=0o755, parents=True)


def _apply_meta(path: Path, member: tarfile.TarInfo) -> None:
    os.lchown(path, member.uid, member.gid)
    if not member.issym():
        os.chmod(path, member.mode & 0o7777)
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key.removeprefix("SCHILY.xattr.")
            if name.startswith(_KEPT_XATTR_PREFIXES) and not member.issym():
                try:
                    os.setxattr(path, name, value.encode("utf-8", "surrogateescape"))
                except OSError:
                    pass  # a filesystem without that xattr namespace: the file still works


def extract_layer(*, fileobj: BinaryIO, dest: Path) -> str:
    """Unpack the tar read from fileobj (plain or gzip) into dest (an empty dir).

    Returns the diff id (sha256 hex of the uncompressed tar). Raises LayerError
    for a hostile or truncated tar; dest is then partly filled and the caller
    removes it.
    """
    import tarfile  # here, not at the top: a resident agent that pulls nothing keeps ~0.4 MiB less
    peek = fileobj.read(2)
    rest: IO[bytes]
    if peek == b"\x1f\x8b":
        import gzip
        rest = gzip.GzipFile(fileobj=_Prepend(peek, fileobj), mode="rb")  # type: ignore[arg-type]
    else:
        rest = _Prepend(peek, fileobj)  # type: ignore[assignment]
    reader = HashingReader(rest)
    dir_times: list[tuple[Path, float]] = []
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                _extract_member(tar=tar, member=member, dest=dest, dir_times=dir_times)
        reader.drain()
    except LayerError:
        raise
    except (tarfile.TarError, EOFError, OSError, io.UnsupportedOperation, zlib.error) as exc:
        raise LayerError(f"layer tar is truncated or corrupt: {exc}") from exc
    for path, mtime in reversed(dir_times):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return reader.hexdigest()


class _Prepend:
    """A reader that returns `head` before the rest of `raw` (for magic sniffing)."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self._head, self._raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._raw.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            if len(data) < n:
                data += self._raw.read(n - len(data))
            return data
        return self._raw.read(n)


def _extract_member(*, tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path,
                    dir_times: list[tuple[Path, float]]) -> None:
    rel = _clean_name(member.name)
    if not rel:
        return  # "./" itself: the layer root
    _check_parents(dest, rel, member.name)
    base = posixpath.basename(rel)
    parent_rel = posixpath.dirname(rel)
    target = dest / rel
    if base == OPAQUE_MARKER:
        d = dest / parent_rel if parent_rel else dest
        d.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.setxattr(d, OPAQUE_XATTR, b"y")
        return
    if base.startswith(WHITEOUT_PREFIX):
        name = base[len(WHITEOUT_PREFIX):]
        if not name or name in (".", ".."):
            raise LayerError(f"layer entry {member.name!r}: bad whiteout")
        _ensure_parent(dest, rel)
        victim = dest / parent_rel / name
        _remove_existing(victim, keep_dir=False)
        os.mknod(victim, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        return
    if member.ischr() or member.isblk():
        raise LayerError(f"layer entry {member.name!r}: device nodes are not allowed in a layer")
    if member.issym():
        link = member.linkname
        if not link:
            raise LayerError(f"layer entry {member.name!r}: empty symlink target")
        # An absolute target resolves inside the container's root; a relative
        # one must not climb above the layer root.
        if not link.startswith("/") and not _inside(posixpath.join(parent_rel, link)):
            raise LayerError(f"layer entry {member.name!r}: symlink to {link!r} escapes the layer")
    if member.islnk():
        try:
            link_rel = _clean_name(member.linkname)
        except LayerError:
            raise LayerError(f"layer entry {member.name!r}: hardlink to {member.linkname!r} "
                             f"escapes the layer") from None
        if not link_rel:
            raise LayerError(f"layer entry {member.name!r}: hardlink to the layer root")
        _check_parents(dest, link_rel, member.name)
        src = dest / link_rel
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            raise LayerError(f"layer entry {member.name!r}: hardlink to {member.linkname!r}, "
                             f"which is not in this layer") from None
        if not stat.S_ISREG(st.st_mode):
            raise LayerError(f"layer entry {member.name!r}: hardlink to a non-regular file")
    _ensure_parent(dest, rel)
    if member.isdir():
        _remove_existing(target, keep_dir=True)
        if not target.exists():
            target.mkdir(mode=0o755)
        _apply_meta(target, member)
        dir_times.append((target, member.mtime))
        return
    _remove_existing(target, keep_dir=False)
    if member.isreg():
        src_f = tar.extractfile(member)
        assert src_f is not None
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            remaining = member.size
            while remaining:
                chunk = src_f.read(min(remaining, 1 << 20))
                if not chunk:
                    raise LayerError(f"layer entry {member.name!r}: truncated")
                out.write(chunk)
                remaining -= len(chunk)
    elif member.issym():
        os.symlink(member.linkname, target)
    elif member.islnk():
        os.link(dest / _clean_name(member.linkname), target, follow_symlinks=False)
        return  # shares the inode: metadata is the original's
    elif member.isfifo():
        os.mkfifo(target, 0o600)
    else:
        raise LayerError(f"layer entry {member.name!r}: unsupported entry type {member.type!r}")
    _apply_meta(target, member)
    os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def write_layer_tar(*, src: Path, out: BinaryIO) -> None:
    """Write the directory tree `src` as a layer tar (deterministic order).

    Overlay whiteouts (char 0/0) become `.wh.NAME`; an opaque directory gets a
    `.wh..wh..opq` entry. Owners are numeric; names are not recorded.
    """
    import tarfile  # as in extract_layer
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        inodes: dict[tuple[int, int], str] = {}
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, src)
            rel_dir = "" if rel_dir == "." else rel_dir
            if rel_dir:
                _add_entry(tar=tar, path=Path(dirpath), arcname=rel_dir, inodes=inodes)
            try:
                opaque = os.getxattr(dirpath, OPAQUE_XATTR) == b"y"
            except OSError:
                opaque = False
            if opaque and rel_dir:
                ti = tarfile.TarInfo(posixpath.join(rel_dir, OPAQUE_MARKER))
                ti.mode, ti.mtime = 0o644, 0
                tar.addfile(ti)
            # os.walk lists symlinks-to-dirs in dirnames; they are entries, not subtrees.
            for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
                path = Path(dirpath) / name
                arc = posixpath.join(rel_dir, name) if rel_dir else name
                st = os.lstat(path)
                if _is_whiteout(st):
                    ti = tarfile.TarInfo(posixpath.join(rel_dir, WHITEOUT_PREFIX + name) if rel_dir
                                         else WHITEOUT_PREFIX + name)
                    ti.mode, ti.mtime = 0o644, 0
                    tar.addfile(ti)
                    continue
                _add_entry(tar=tar, path=path, arcname=arc, inodes=inodes)


def _add_entry(*, tar: tarfile.TarFile, path: Path, arcname: str,
               inodes: dict[tuple[int, int], str]) -> None:
    import tarfile
    st = os.lstat(path)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        return  # devices and sockets never go into a layer
    ti = tar.gettarinfo(str(path), arcname=arcname)
    ti.uname = ti.gname = ""
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        if key in inodes:
            ti.type, ti.linkname, ti.size = tarfile.LNKTYPE, inodes[key], 0
            tar.addfile(ti)
            return
        inodes[key] = arcname
    if not stat.S_ISLNK(st.st_mode):
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError:
            names = []
        for name in names:
            if name.startswith(_KEPT_XATTR_PREFIXES):
                value = os.getxattr(path, name, follow_symlinks=False)
                ti.pax_headers[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            tar.addfile(ti, f)
    else:
        tar.addfile(ti)
