"""Fixtures for the cgroup driver tests.

`cgroup_parent` (root): a unique parent "skiff-test-<random>" in the real v1
hierarchies; afterwards every process left in it is killed and every
directory under it removed, even when the test failed.
`child_process`: starts helper processes (python snippets) that the test can
move into cgroups; every one is killed and reaped at the end.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.runtime.linux.cgroups.detect import v1_mount_points
from agent.runtime.linux.cgroups.v1.manager import CONTROLLERS

UNIFIED = Path("/sys/fs/cgroup/unified")


def _purge(base: Path) -> None:
    """Kill what is in base and below, then rmdir bottom-up."""
    if not base.is_dir():
        return
    dirs = sorted((Path(d) for d, _, _ in os.walk(base)), key=lambda p: len(p.parts), reverse=True)
    for d in dirs:
        try:
            for pid in (d / "cgroup.procs").read_text().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        except OSError:
            pass
    for d in dirs:
        for _ in range(100):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                import time
                time.sleep(0.02)


@pytest.fixture
def cgroup_parent():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    parent = f"skiff-test-{secrets.token_hex(4)}"
    mounts = v1_mount_points()
    try:
        yield parent
    finally:
        for controller in CONTROLLERS:
            if controller in mounts:
                _purge(mounts[controller] / parent)
        _purge(UNIFIED / parent)


class Children:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, code: str) -> subprocess.Popen:
        """A python process running `code`; its stdin/stdout are pipes."""
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream:
                    stream.close()


@pytest.fixture
def children():
    kids = Children()
    try:
        yield kids
    finally:
        kids.stop_all()
