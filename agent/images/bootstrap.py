"""Offline base images, made from what a Debian machine already has.

- busybox: one layer holding Debian's static /usr/bin/busybox, a symlink per
  applet it lists, /etc/passwd, /etc/group and /tmp; Cmd ["sh"]. Takes well
  under a second, so tests and the all-in-one can always have an image.
- debian: `debootstrap --variant=minbase` of the machine's own apt sources
  (deb822 files under /etc/apt/sources.list.d or the classic sources.list),
  optionally with packages, imported as one layer. `python3` means
  python3-minimal plus libpython3-stdlib: the minimal interpreter lacks
  http.server, which the web-server example needs, and the full `python3`
  package drags in more. Cached: when the tag exists, nothing is done.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TextIO

from agent.images.errors import ImageError, ImageNotFound
from agent.images.store import ImageStore

BUSYBOX = Path("/usr/bin/busybox")
_PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
           "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
           "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
_GROUP = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _exists(store: ImageStore, ref: str) -> bool:
    try:
        store.manifest(ref)
        return True
    except ImageNotFound:
        return False


def bootstrap_busybox(*, store: ImageStore, ref: str = "busybox:latest", force: bool = False,
                      busybox: Path = BUSYBOX, log: TextIO | None = None) -> str:
    """Make (or find) the busybox image; returns the reference."""
    if not force and _exists(store, ref):
        return ref
    if not busybox.exists():
        raise ImageError(f"{busybox} not found: install Debian's busybox-static")
    applets = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    work = Path(tempfile.mkdtemp(dir=store.tmp, prefix="bootstrap-busybox-"))
    os.chmod(work, 0o755)
    try:
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev",
                  "var", "home"):
            (work / d).mkdir(parents=True, exist_ok=True)
        (work / "tmp").mkdir(mode=0o1777)
        os.chmod(work / "tmp", 0o1777)
        os.chmod(work / "root", 0o700)
        shutil.copy2(busybox, work / "bin/busybox")
        for applet in applets:
            target = work / applet
            if applet == "bin/busybox" or target.exists() or target.is_symlink():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink("/bin/busybox", target)
        (work / "etc/passwd").write_text(_PASSWD)
        (work / "etc/group").write_text(_GROUP)
        layer = store.add_layer_from_dir(src=work, move=True)
        store.commit_image(config={"config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
                                   "history": [{"created_by": "skiff image bootstrap busybox"}]},
                           layers=[layer], ref=ref)
        if log:
            print(f"bootstrapped {ref} ({len(applets)} applets)", file=log)
        return ref
    finally:
        if work.exists():
            shutil.rmtree(work)


def apt_mirror(*, suite: str, sources: Path = Path("/etc/apt")) -> str:
    """The first Debian mirror URI carrying `suite` in the machine's apt sources."""
    candidates: list[tuple[str, list[str]]] = []
    d = sources / "sources.list.d"
    for f in sorted(d.glob("*.sources")) if d.is_dir() else []:
        for stanza in re.split(r"\n\s*\n", f.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
            if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
                continue
            for uri in fields.get("uris", "").split():
                candidates.append((uri, fields.get("suites", "").split()))
    for f in [sources / "sources.list", *(sorted(d.glob("*.list")) if d.is_dir() else [])]:
        if not f.exists():
            continue
        for line in f.read_text().splitlines():
            parts = re.sub(r"\[[^]]*\]", "", line).split()
            if len(parts) >= 3 and parts[0] == "deb":
                candidates.append((parts[1], [parts[2]]))
    for uri, suites in candidates:
        if suite in suites:
            return uri
    raise ImageError(f"no apt source in {sources} carries suite {suite!r}")


def bootstrap_debian(*, store: ImageStore, suite: str = "bookworm", include: tuple[str, ...] = (),
                     ref: str | None = None, force: bool = False, log: TextIO | None = None) -> str:
    """debootstrap a minbase Debian (with `include`) into an image; returns the reference."""
    packages: tuple[str, ...] = ()
    for p in include:
        packages += ("python3-minimal", "libpython3-stdlib") if p == "python3" else (p,)
    if ref is None:
        ref = f"debian-python:{suite}" if "python3-minimal" in packages else f"debian:{suite}"
    if not force and _exists(store, ref):
        return ref
    debootstrap = shutil.which("debootstrap")
    if not debootstrap:
        raise ImageError("debootstrap not found: apt-get install debootstrap")
    mirror = apt_mirror(suite=suite)
    work = Path(tempfile.mkdtemp(dir=store.tmp, prefix="bootstrap-debian-"))
    rootfs = work / "rootfs"
    try:
        cmd = [debootstrap, "--variant=minbase"]
        if packages:
            cmd.append("--include=" + ",".join(packages))
        cmd += [suite, str(rootfs), mirror]
        if log:
            print("+ " + " ".join(cmd), file=log, flush=True)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-15:])
            raise ImageError(f"debootstrap exited {proc.returncode}:\n{tail}")
        # Trim what a container never needs: apt lists and caches, device nodes
        # (the runtime provides /dev), logs.
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "var/log"):
            p = rootfs / sub
            if p.is_dir():
                for child in p.iterdir():
                    if child.is_file() or child.is_symlink():
                        child.unlink()
        dev = rootfs / "dev"
        if dev.is_dir():
            shutil.rmtree(dev)
            dev.mkdir(mode=0o755)
        layer = store.add_layer_from_dir(src=rootfs, move=True)
        store.commit_image(config={"config": {"Env": [PATH_ENV], "Cmd": ["bash"]},
                                   "history": [{"created_by": " ".join(cmd[:-2])}]},
                           layers=[layer], ref=ref)
        if log:
            print(f"bootstrapped {ref}", file=log)
        return ref
    finally:
        if work.exists():
            shutil.rmtree(work)
