"""COPY and ADD: choosing source files and laying them out as a layer.

A `SourceTree` is where COPY reads from: the build context (filtered by
.dockerignore) or another stage's / image's root filesystem (its unpacked
layers, read top-down with whiteouts honoured, no mount needed). `copy_into`
writes the selected files into a fresh layer directory under their
destination, with Docker's rules (a directory's contents are copied, not the
directory; several sources need a destination ending in `/`; ADD unpacks a
local tar). Nothing outside the tree is ever read: `..` and absolute source
paths are clamped to its root, and a symlink that leads out is refused.
`content_hash` is the cache key part that makes "app.py changed" visible.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import re
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from agent.images.errors import ImageError


class CopyError(ImageError):
    pass


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if pattern.startswith("/", i):
                out[-1] = "(?:.*/)?"
                i += 1
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c)))
        i += 1
    return re.compile("".join(out) + "(?:/.*)?$")


@dataclass(frozen=True)
class IgnoreRules:
    """.dockerignore: patterns matched against context-relative paths (and
    their parents); `!pattern` re-includes; the last matching rule wins."""
    rules: tuple[tuple[bool, re.Pattern[str]], ...] = ()

    @classmethod
    def load(cls, *, context: Path) -> "IgnoreRules":
        path = context / ".dockerignore"
        if not path.exists():
            return cls()
        rules = []
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
            if pattern in (".", ""):
                continue
            rules.append((negate, _pattern_regex(pattern)))
        return cls(rules=tuple(rules))

    def ignored(self, rel: str) -> bool:
        result = False
        for negate, rx in self.rules:
            if rx.match(rel):
                result = not negate
        return result


class SourceTree:
    """Read-only view of a directory tree (context) or of stacked layers (a stage)."""

    def __init__(self, *, roots: tuple[Path, ...], ignore: IgnoreRules = IgnoreRules(),
                 label: str = "build context") -> None:
        self.roots = roots          # highest first
        self.ignore = ignore
        self.label = label

    @classmethod
    def context(cls, *, path: Path) -> "SourceTree":
        return cls(roots=(path.resolve(),), ignore=IgnoreRules.load(context=path))

    @classmethod
    def layers(cls, *, lower_dirs: tuple[Path, ...], label: str) -> "SourceTree":
        return cls(roots=tuple(reversed(lower_dirs)), label=label)

    def locate(self, rel: str) -> Path | None:
        """The file backing `rel` (following no symlink), or None if absent/whited out."""
        rel = rel.strip("/")
        parts = rel.split("/") if rel else []
        for root in self.roots:
            cur = root
            for i, part in enumerate(parts):
                cand = cur / part
                try:
                    st = os.lstat(cand)
                except FileNotFoundError:
                    # Not in this layer; an opaque ancestor hides the layers below.
                    if _opaque(cur) and cur != root:
                        return None
                    break
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    return None  # whiteout: deleted in this layer
                if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
                    return None  # a file (or symlink) here shadows anything below it
                cur = cand
            else:
                return cur
        return None

    def resolve(self, rel: str, *, hops: int = 0) -> str:
        """Follow symlinks inside the tree; raise if one leads out of it."""
        if hops > 40:
            raise CopyError(f"{rel}: too many levels of symbolic links")
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        done: list[str] = []
        for i, part in enumerate(parts):
            if part == "..":
                if not done:
                    raise CopyError(f"forbidden path outside the {self.label}: {rel}")
                done.pop()
                continue
            done.append(part)
            path = self.locate("/".join(done))
            if path is not None and path.is_symlink():
                target = os.readlink(path)
                if self.label == "build context" and target.startswith("/"):
                    raise CopyError(f"forbidden path outside the {self.label}: "
                                    f"{'/'.join(done)} -> {target}")
                base = "" if target.startswith("/") else "/".join(done[:-1])
                rest = "/".join(parts[i + 1:])
                joined = posixpath.join(base, target, rest) if rest else posixpath.join(base, target)
                norm = posixpath.normpath("/" + joined) if target.startswith("/") else posixpath.normpath(joined)
                if norm.startswith("..") or (self.label == "build context" and norm.startswith("/")):
                    raise CopyError(f"forbidden path outside the {self.label}: "
                                    f"{'/'.join(done)} -> {target}")
                return self.resolve(norm.lstrip("/"), hops=hops + 1)
        return "/".join(done)

    def listdir(self, rel: str) -> list[str]:
        names: set[str] = set()
        gone: set[str] = set()
        for root in self.roots:
            d = root / rel if rel else root
            if not d.is_dir() or d.is_symlink():
                continue
            for entry in os.scandir(d):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    gone.add(entry.name)
                elif entry.name not in gone:
                    names.add(entry.name)
            if _opaque(d):
                break
        return sorted(names)

    def glob(self, pattern: str) -> list[str]:
        """Context-relative paths matching a COPY source (with * ? [] per component)."""
        clean = posixpath.normpath("/" + pattern).lstrip("/")
        if pattern.replace("\\", "/").split("/").count("..") and \
                posixpath.normpath(pattern.lstrip("/")).startswith(".."):
            raise CopyError(f"forbidden path outside the {self.label}: {pattern}")
        if not any(ch in clean for ch in "*?["):
            rel = self.resolve(clean)
            if (self.locate(rel) is None) or (rel and self.ignore.ignored(rel)):
                raise CopyError(f"{pattern}: not found in the {self.label}")
            return [rel]
        matches = [""]
        for part in clean.split("/"):
            nxt = []
            for base in matches:
                for name in self.listdir(self.resolve(base) if base else ""):
                    if fnmatch.fnmatchcase(name, part):
                        nxt.append(posixpath.join(base, name) if base else name)
            matches = nxt
        matches = [m for m in matches if not self.ignore.ignored(m)]
        if not matches:
            raise CopyError(f"{pattern}: no source files were specified (nothing matches)")
        return sorted(matches)

    def walk(self, rel: str) -> list[str]:
        """rel and everything under it (not ignored), parents first."""
        out = [rel]
        path = self.locate(rel)
        if path is not None and path.is_dir() and not path.is_symlink():
            for name in self.listdir(rel):
                child = posixpath.join(rel, name) if rel else name
                if not self.ignore.ignored(child):
                    out += self.walk(child)
        return out


def content_hash(*, tree: SourceTree, sources: list[str]) -> str:
    """sha256 over names, modes, link targets and bytes of everything copied."""
    h = hashlib.sha256()
    for src in sources:
        for rel in tree.walk(src):
            path = tree.locate(rel)
            if path is None:
                continue
            st = os.lstat(path)
            h.update(f"{rel}\0{st.st_mode:o}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
            h.update(b"\1")
    return h.hexdigest()


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque") == b"y"
    except OSError:
        return False


def _mkdirs(layer: Path, rel: str) -> None:
    """Parents of a COPY destination: root-owned 0755, as Docker creates them."""
    cur = layer
    for part in [p for p in rel.split("/") if p]:
        cur = cur / part
        if not cur.exists():
            cur.mkdir(mode=0o755)


def _copy_one(*, tree: SourceTree, rel: str, dest: Path, owner: tuple[int, int] | None,
              chmod: int | None) -> None:
    src = tree.locate(rel)
    if src is None:
        return
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        dest.mkdir(mode=0o755, exist_ok=True)
        os.chmod(dest, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
        for name in tree.listdir(rel):
            child = posixpath.join(rel, name) if rel else name
            if not tree.ignore.ignored(child):
                _copy_one(tree=tree, rel=child, dest=dest / name, owner=owner, chmod=chmod)
    elif stat.S_ISLNK(st.st_mode):
        if dest.exists() or dest.is_symlink():
            dest.unlink()
        os.symlink(os.readlink(src), dest)
    elif stat.S_ISREG(st.st_mode):
        if dest.is_dir():
            shutil.rmtree(dest)
        shutil.copyfile(src, dest, follow_symlinks=False)
        os.chmod(dest, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
    else:
        return  # fifos, sockets, devices are not copied
    uid, gid = owner if owner is not None else (0, 0) if tree.label == "build context" \
        else (st.st_uid, st.st_gid)
    os.lchown(dest, uid, gid)
    os.utime(dest, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)


_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def _is_tar(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _unpack_tar(*, path: Path, dest: Path) -> None:
    import bz2
    import gzip
    import lzma
    from agent.images.layers import extract_layer
    with open(path, "rb") as raw:
        magic = raw.read(6)
    opener = {b"BZh": bz2.open, b"\xfd7zXZ": lzma.open}
    f = None
    for prefix, fn in opener.items():
        if magic.startswith(prefix):
            f = fn(path, "rb")
    if f is None:
        f = open(path, "rb") if not magic.startswith(b"\x1f\x8b") else gzip.open(path, "rb")
    with f:
        extract_layer(fileobj=f, dest=dest)


def copy_into(*, tree: SourceTree, sources: list[str], dest: str, workdir: str, layer: Path,
              owner: tuple[int, int] | None = None, chmod: int | None = None,
              unpack_archives: bool = False, original: list[str] | None = None,
              image: "SourceTree | None" = None) -> None:
    """Lay out `sources` (already globbed, tree-relative) at `dest` inside `layer`.

    `image` is the root filesystem the layer goes on: the destination is
    resolved through its symlinks (COPY x /bin/ on a merged-/usr Debian lands
    in usr/bin, instead of a new `bin` directory hiding the symlink), and an
    existing directory there is copied into, as Docker does."""
    dest_abs = posixpath.normpath(posixpath.join(workdir or "/", dest))
    dir_dest = dest.endswith("/") or dest.endswith("/.") or dest in (".", "/") or len(sources) > 1 \
        or any(any(ch in s for ch in "*?[") for s in (original or []))
    if len(sources) > 1 and not (dest.endswith("/") or dest in (".", "/")):
        raise CopyError("When using COPY with more than one source file, the destination "
                        "must be a directory and end with a /")
    rel_dest = dest_abs.lstrip("/")
    if image is not None and rel_dest:
        rel_dest = image.resolve(rel_dest)
        existing = image.locate(rel_dest)
        if existing is not None and existing.is_dir() and not existing.is_symlink():
            dir_dest = True
    for src in sources:
        path = tree.locate(src)
        if path is None:
            raise CopyError(f"{src}: not found in the {tree.label}")
        is_dir = path.is_dir() and not path.is_symlink()
        if unpack_archives and not is_dir and _is_tar(path):
            _mkdirs(layer, rel_dest)
            _unpack_tar(path=path, dest=layer / rel_dest if rel_dest else layer)
            continue
        if is_dir:
            target_rel = rel_dest
            _mkdirs(layer, target_rel)
            for name in tree.listdir(src):
                child = posixpath.join(src, name) if src else name
                if not tree.ignore.ignored(child):
                    _copy_one(tree=tree, rel=child, dest=(layer / target_rel / name) if target_rel
                              else layer / name, owner=owner, chmod=chmod)
            continue
        if dir_dest:
            target_rel = posixpath.join(rel_dest, posixpath.basename(src)) if rel_dest \
                else posixpath.basename(src)
        else:
            target_rel = rel_dest
        _mkdirs(layer, posixpath.dirname(target_rel))
        _copy_one(tree=tree, rel=src, dest=layer / target_rel, owner=owner, chmod=chmod)


def lookup_owner(*, spec: str, lower_dirs: tuple[Path, ...]) -> tuple[int, int]:
    """--chown=user[:group] -> (uid, gid); names resolved in the image's /etc/passwd, /etc/group."""
    user, _, group = spec.partition(":")
    tree = SourceTree.layers(lower_dirs=lower_dirs, label="image")

    def table(name: str) -> list[list[str]]:
        path = tree.locate(f"etc/{name}")
        if path is None or not path.is_file():
            return []
        return [line.split(":") for line in path.read_text(errors="replace").splitlines() if ":" in line]

    def find(name: str, rows: list[list[str]], what: str) -> list[str]:
        for row in rows:
            if row[0] == name and len(row) > 3:
                return row
        raise CopyError(f"--chown={spec}: unable to find {what} {name!r} in the image")

    if user.isdigit():
        uid, default_gid = int(user), int(user)
    else:
        row = find(user, table("passwd"), "user")
        uid, default_gid = int(row[2]), int(row[3])
    if not group:
        return uid, default_gid
    if group.isdigit():
        return uid, int(group)
    return uid, int(find(group, table("group"), "group")[2])
