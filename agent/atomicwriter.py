"""kubelet's AtomicWriter: a directory of files replaced all at once.

    <dir>/..2026_11_30_19_42_05.8f3k2/key      the files of one version
    <dir>/..data -> ..2026_11_30_19_42_05.8f3k2 the version in use
    <dir>/key -> ..data/key                     what the container reads

An update writes the new version into a new hidden directory, points a
temporary symlink `..data_tmp` at it and renames that over `..data` — one
rename(2), atomic — then adds or removes the visible top-level links and
deletes the old version. A reader opens `key` through `..data` and so gets
either the old file or the new one, never a half-written one; a reader that
opened the old file keeps reading it. A file mounted by subPath is bound to
one version's file and does not follow (as in Kubernetes).
"""
from __future__ import annotations

import datetime
import os
import secrets
import shutil
from pathlib import Path

DATA = "..data"
DATA_TMP = "..data_tmp"

Payload = dict[str, tuple[bytes, int]]   # relative path -> (content, mode)


def current(target: Path) -> Path | None:
    """The version directory in use, if any."""
    link = target / DATA
    return target / os.readlink(link) if link.is_symlink() else None


def write(target: Path, payload: Payload) -> bool:
    """Make target hold exactly payload; False (nothing touched) when it already does."""
    target.mkdir(parents=True, exist_ok=True)
    old = current(target)
    if old is not None and _holds(old, payload):
        return False
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S.")
    version = target / (stamp + secrets.token_hex(5))
    version.mkdir(mode=0o755)
    os.chmod(version, 0o755)   # not the umask's
    for rel, (content, mode) in sorted(payload.items()):
        path = version / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
    tmp = target / DATA_TMP
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(version.name, tmp)
    os.rename(tmp, target / DATA)
    visible = {rel.split("/", 1)[0] for rel in payload}
    for name in visible:
        link = target / name
        if not link.is_symlink():
            os.symlink(f"{DATA}/{name}", link)
    for entry in os.listdir(target):
        path = target / entry
        if entry.startswith(".."):
            if entry not in (DATA, version.name) and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
        elif entry not in visible and path.is_symlink():
            path.unlink()
    return True


def _holds(version: Path, payload: Payload) -> bool:
    files = {str(p.relative_to(version)) for p in version.rglob("*") if p.is_file()}
    if files != set(payload):
        return False
    for rel, (content, mode) in payload.items():
        path = version / rel
        st = path.stat()
        if st.st_mode & 0o7777 != mode or st.st_size != len(content) or path.read_bytes() != content:
            return False
    return True
