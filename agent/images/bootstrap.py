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
  debootstrap runs in its machine-readable mode (`--debian-installer`, the
  protocol debian-installer reads on fd 3: `P: now end NAME` progress and
  `I:`/`W:`/`E:` messages, each with its arguments and printf format);
  `DebootstrapMeter` turns that into stages, packages of total and bytes
  for a `skiff.progress.Progress`. Its full log goes to a file whose tail
  an error quotes.
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
from skiff.progress import Progress

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


# debootstrap's progress names whose counts are packages (the rest count steps or bytes).
_PACKAGE_STAGES = {"SIZEDEBS", "EXTRACTPKGS", "UNPACKREQ", "CONFREQ", "UNPACKBASE", "CONFBASE"}


def _printf(fmt: str, args: list[str]) -> str:
    """debootstrap's messages are printf formats with %s arguments."""
    out, rest = [], list(args)
    for i, piece in enumerate(fmt.split("%s")):
        if i:
            out.append(rest.pop(0) if rest else "")
        out.append(piece)
    return "".join(out).replace("%%", "%")


class DebootstrapMeter:
    """Reads debootstrap's --debian-installer protocol, line by line, into a
    Progress: the stage (the last progress format, or the last message before
    any), packages fetched of total with bytes while downloading, packages
    done of total while extracting, unpacking and configuring. Warnings
    become messages; errors are kept for the exception."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.kind = ""            # "P", "I", "W" or "E": the record being read
        self.name = ""
        self.numbers: tuple[int, int] | None = None
        self.args: list[str] = []
        self.stage_name = ""      # the last P record's NAME
        self.stage = "starting debootstrap"
        self.now = self.end = 0
        self.packages = 0         # the number to fetch (SIZEDEBS' end)
        self.fetched = 0
        self.errors: list[str] = []

    def feed(self, line: str) -> None:
        key, _, value = line.rstrip("\n").partition(": ")
        if key in ("P", "I", "W", "E"):
            self.kind, self.args = key, []
            if key == "P":
                now, end, *name = value.split(None, 2)
                self.now, self.end = int(now), int(end)
                if not name:   # a download's percentage: same stage, new position
                    self._show()
                    return
                self.name = name[0]
            else:
                self.name = value
                if key == "I" and value == "RETRIEVING" and self.stage_name == "DOWNDEBS":
                    self.fetched += 1
        elif key in ("PA", "IA", "WA", "EA"):
            self.args.append(value)
        elif key in ("PF", "IF", "WF", "EF"):
            text = _printf(value, self.args)
            if self.kind == "P":
                self.stage_name, self.stage = self.name, text
                if self.name == "SIZEDEBS":
                    self.packages = self.end
                self._show()
            elif self.kind == "I" and not self.stage_name:
                self.stage = text.rstrip(". ")
                self._show()
            elif self.kind == "W" and self.progress is not None:
                self.progress.message(f"warning: {text}")
            elif self.kind == "E":
                self.errors.append(text)

    def _show(self) -> None:
        if self.progress is None:
            return
        stage = self.stage[:1].lower() + self.stage[1:]
        if self.stage_name == "DOWNDEBS":
            self.progress.update(stage=stage, done=self.fetched, total=self.packages or None, unit="packages",
                                 nbytes=self.now, total_bytes=self.end or None)
        elif self.stage_name in _PACKAGE_STAGES:
            self.progress.update(stage=stage, done=self.now, total=self.end or None, unit="packages")
        elif self.stage_name and self.end:   # a file's download or a step count: a percentage
            self.progress.update(stage=f"{stage} {100 * self.now // self.end}%")
        else:
            self.progress.update(stage=stage)


def run_debootstrap(cmd: list[str], *, log_path: Path, progress: Progress | None) -> None:
    """Run debootstrap (`cmd` without --debian-installer) with its protocol on
    fd 3 read into `progress`; its full log to `log_path`. Raises ImageError
    with debootstrap's errors and the log's tail."""
    read_fd, write_fd = os.pipe()
    meter = DebootstrapMeter(progress)
    try:
        with open(log_path, "wb") as log:
            # debootstrap writes the protocol to fd 3; the shell puts our pipe there
            # (through /proc: dash's `3>&N` takes one digit only).
            proc = subprocess.Popen(["/bin/sh", "-c", f'exec 3>/proc/self/fd/{write_fd}; exec "$@"', "sh",
                                     cmd[0], "--debian-installer", *cmd[1:]],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    pass_fds=(write_fd,))
        os.close(write_fd)
        write_fd = -1
        with os.fdopen(read_fd, "r", errors="replace") as protocol:
            read_fd = -1
            for line in protocol:
                meter.feed(line)
        returncode = proc.wait()
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
    if returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        said = "".join(f"\n{e}" for e in meter.errors)
        raise ImageError(f"debootstrap exited {returncode}:{said}\n{tail}".rstrip())


def bootstrap_debian(*, store: ImageStore, suite: str = "bookworm", include: tuple[str, ...] = (),
                     ref: str | None = None, force: bool = False, log: TextIO | None = None,
                     progress: Progress | None = None) -> str:
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
        run_debootstrap(cmd, log_path=work / "debootstrap.log", progress=progress)
        if progress is not None:
            progress.update(stage="importing the root filesystem as a layer")
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
        if progress is not None:
            progress.finish()
        if log:
            print(f"bootstrapped {ref}", file=log)
        return ref
    finally:
        if work.exists():
            shutil.rmtree(work)
