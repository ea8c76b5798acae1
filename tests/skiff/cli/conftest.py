"""Runs the real `skiff` command (`python -m skiff.cli.main`) as a subprocess,
the way a user does, with a private client config so ~/.skiff/config is
never read."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def skiff(tmp_path):
    """skiff(*args, server=..., input=...) -> Result."""
    env = dict(os.environ, SKIFF_CONFIG=str(tmp_path / "skiff-config"),
               PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    env.pop("SKIFF_SERVER", None)

    def run(*args: str, server: str | None = None, input: str | None = None, timeout: float = 60) -> Result:
        argv = [sys.executable, "-m", "skiff.cli.main", *(["--server", server] if server else []), *args]
        proc = subprocess.run(argv, cwd=tmp_path, env=env, input=input, capture_output=True, text=True,
                              timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run
