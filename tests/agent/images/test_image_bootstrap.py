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


# What debootstrap --debian-installer writes on fd 3 (the protocol debian-installer
# reads: see `progress`, `info`, `warning` and `error` in /usr/share/debootstrap/functions),
# shortened to three packages.
PROTOCOL = """\
I: RETRIEVING
IA: InRelease
IF: Retrieving %s
P: 0 3 SIZEDEBS
PF: Finding package sizes
P: 3 3 SIZEDEBS
PF: Finding package sizes
P: 0 3000000 DOWNDEBS
PF: Downloading packages
I: RETRIEVING
IA: base-files
IA: 12.4
IF: Retrieving %s %s
P: 1000000 3000000
I: RETRIEVING
IA: bash
IA: 5.2
IF: Retrieving %s %s
P: 2500000 3000000
W: COULDNTDL
WA: dash
WF: Couldn't download package %s
P: 3000000 3000000 DOWNDEBS
PF: Downloading packages
P: 1 3 EXTRACTPKGS
PF: Extracting packages
I: EXTRACTING
IA: base-files
IF: Extracting %s...
P: 2 3 UNPACKREQ
PF: Unpacking required packages
I: BASESUCCESS
IF: Base system installed successfully.
"""


class Recorder:
    def __init__(self) -> None:
        self.updates: list[tuple] = []
        self.messages: list[str] = []

    def update(self, *, stage, done=None, total=None, unit="", nbytes=None, total_bytes=None) -> None:
        self.updates.append((stage, done, total, unit, nbytes, total_bytes))

    def message(self, text: str) -> None:
        self.messages.append(text)

    def finish(self, text=None) -> None:
        self.messages.append(f"finish {text}")


def test_debootstrap_meter_reads_stages_packages_and_bytes():
    rec = Recorder()
    meter = bootstrap.DebootstrapMeter(rec)
    for line in PROTOCOL.splitlines(keepends=True):
        meter.feed(line)
    assert rec.updates == [
        ("retrieving InRelease", None, None, "", None, None),
        ("finding package sizes", 0, 3, "packages", None, None),
        ("finding package sizes", 3, 3, "packages", None, None),
        ("downloading packages", 0, 3, "packages", 0, 3000000),
        ("downloading packages", 1, 3, "packages", 1000000, 3000000),
        ("downloading packages", 2, 3, "packages", 2500000, 3000000),
        ("downloading packages", 2, 3, "packages", 3000000, 3000000),
        ("extracting packages", 1, 3, "packages", None, None),
        ("unpacking required packages", 2, 3, "packages", None, None)]
    assert rec.messages == ["warning: Couldn't download package dash"]


def fake_debootstrap(tmp_dir, *, exit_code: int = 0) -> str:
    """A debootstrap that speaks the protocol on fd 3 only when asked to
    (--debian-installer, as the real one refuses it without fd 3)."""
    (tmp_dir / "protocol").write_text(PROTOCOL + ("E: COULDNTDLPKGS\nEA: bash\nEF: Couldn't download packages: %s\n"
                                                  if exit_code else ""))
    script = tmp_dir / "debootstrap"
    script.write_text(f"""#!/bin/sh
[ "$1" = --debian-installer ] || {{ echo "no --debian-installer" >&2; exit 2; }}
for target; do :; done   # the last argument is the mirror; the one before it the target
set -- "$@"
eval target=\\${{$(($# - 1))}}
mkdir -p "$target/etc" && echo 'ID=debian' > "$target/etc/os-release"
echo "full log line"
cat {tmp_dir / 'protocol'} >&3
exit {exit_code}
""")
    script.chmod(0o755)
    return str(script)


def test_bootstrap_debian_reports_progress(store, tmp_dir, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: fake_debootstrap(tmp_dir))
    monkeypatch.setattr(bootstrap, "apt_mirror", lambda suite: "http://mirror.invalid/debian")
    rec = Recorder()
    assert bootstrap.bootstrap_debian(store=store, progress=rec) == "debian:bookworm"
    stages = [u[0] for u in rec.updates]
    assert stages[0] == "retrieving InRelease" and stages[-1] == "importing the root filesystem as a layer"
    assert ("downloading packages", 2, 3, "packages", 2500000, 3000000) in rec.updates
    assert rec.messages[-1] == "finish None"
    assert (store.resolve("debian:bookworm").lower_dirs[0] / "etc/os-release").read_text() == "ID=debian\n"


def test_bootstrap_debian_failure_quotes_debootstraps_errors(store, tmp_dir, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: fake_debootstrap(tmp_dir, exit_code=1))
    monkeypatch.setattr(bootstrap, "apt_mirror", lambda suite: "http://mirror.invalid/debian")
    with pytest.raises(ImageError) as err:
        bootstrap.bootstrap_debian(store=store, progress=None)
    assert str(err.value) == "debootstrap exited 1:\nCouldn't download packages: bash\nfull log line"
