"""Fixtures for the runtime's root tests: a busybox image layer and a
LinuxRuntime on private directories and a private cgroup parent.

`busybox_layer` (session): a directory made from /usr/bin/busybox (static)
    plus a symlink per applet, the way `busybox --install -s` lays it out;
    used as the image's only lower dir.
`runtime` (function): LinuxRuntime(run_dir=<tmp>, cgroup_parent="skiff-test-<random>").
    Teardown removes every container and sandbox (cleanup_orphans with an
    empty keep set), stops the zygote and removes the cgroup parent in every
    hierarchy and the temp dirs — also when the test failed.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from agent.runtime.interface import ContainerConfig, Resources, SandboxConfig, SecurityConfig
from agent.runtime.linux import LinuxRuntime
from tests.conftest import remove_cgroup_parent

BUSYBOX = "/usr/bin/busybox"
ROOT = Path(__file__).resolve().parents[4]   # the repository


def make_busybox_layer(root: Path) -> Path:
    """A minimal busybox root filesystem in root (returned)."""
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "proc", "sys", "dev", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list-full"], check=True, capture_output=True,
                             text=True).stdout.split()
    for path in applets:
        link = root / path
        if not link.exists() and link.name != "busybox":
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink("/bin/busybox", link)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return root


@pytest.fixture(scope="session")
def busybox_layer():
    tmp = Path(tempfile.mkdtemp(prefix="skiff-test-layer-"))
    try:
        yield make_busybox_layer(tmp / "layer")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class RuntimeHarness:
    """The runtime plus the few helpers every test needs."""

    def __init__(self, runtime: LinuxRuntime, tmp: Path, layer: Path) -> None:
        self.rt = runtime
        self.tmp = tmp
        self.layer = layer
        self._n = 0

    def sandbox_config(self, *, name: str = "pod", **kw) -> SandboxConfig:
        self._n += 1
        return SandboxConfig(pod_id=f"pod{self._n}-{secrets.token_hex(4)}", namespace="default",
                             name=name, hostname=kw.pop("hostname", name), **kw)

    def container_config(self, pod_id: str, args: tuple[str, ...], **kw) -> ContainerConfig:
        self._n += 1
        cid = f"c{self._n}-{secrets.token_hex(4)}"
        kw.setdefault("log_path", self.tmp / f"{cid}.log")
        kw.setdefault("lower_dirs", (self.layer,))
        return ContainerConfig(id=cid, pod_id=pod_id, name=kw.pop("name", "main"), image="busybox",
                               image_id="sha256:test", args=args, **kw)

    async def run(self, args: tuple[str, ...], *, sandbox: SandboxConfig | None = None, **kw):
        """Sandbox + start + wait; returns (status, log text, config)."""
        sb = sandbox or self.sandbox_config()
        await self.rt.create_sandbox(sb)
        cfg = self.container_config(sb.pod_id, args, **kw)
        await self.rt.start(cfg)
        st = await self.rt.wait(cfg.id)
        return st, Path(cfg.log_path).read_text(), cfg


def leftovers(rt: LinuxRuntime, *, pids: list[int] = ()) -> list[str]:
    """Everything of this runtime still present: mounts under its run dir,
    cgroups under its parent, pinned namespaces, state dirs, live processes."""
    found = []
    run_dir = str(rt.dirs.run_dir)
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if run_dir in line]
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        base = hierarchy / rt.cgroup_parent
        if base.is_dir():
            found += [f"cgroup {p}" for p in base.iterdir() if p.is_dir()]
    for sub in ("containers", "pods", "netns", "ns"):
        d = rt.dirs.run_dir / sub
        if d.is_dir():
            found += [f"state {d / n}" for n in os.listdir(d)]
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state != "Z":
            found.append(f"process {pid}")
    return found


@pytest.fixture
def runtime(busybox_layer):
    tmp = Path(tempfile.mkdtemp(prefix="skiff-test-rt-"))
    parent = f"skiff-test-{secrets.token_hex(4)}"
    rt = LinuxRuntime(run_dir=tmp / "run", cgroup_parent=parent)
    try:
        yield RuntimeHarness(rt, tmp, busybox_layer)
    finally:
        try:
            asyncio.run(rt.cleanup_orphans(set()))
        finally:
            rt.close()
            remove_cgroup_parent(parent)
            shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["ContainerConfig", "Resources", "SecurityConfig"]
