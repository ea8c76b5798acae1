"""A real control plane with its REST front door on a free port, and kubectl
(/usr/bin/kubectl, as installed) pointed at it through a private kubeconfig
(and a private discovery cache), never ~/.kube/config."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from skiff import kubeconfig
from tests.conftest import ControlPlaneInfo, free_port

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


@dataclass(frozen=True)
class Rest:
    info: ControlPlaneInfo
    url: str                # http://127.0.0.1:PORT
    kubeconfig: Path
    home: Path

    def kubectl(self, *args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), HOME=str(self.home))
        return subprocess.run([KUBECTL, "--cache-dir", str(self.home / "cache"), *args], env=env,
                              capture_output=True, text=True, timeout=timeout, input=input)


@pytest.fixture
def rest(controlplane_factory, tmp_path) -> Rest:
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed")
    port = free_port()
    info = controlplane_factory("--rest-listen", f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}"
    path = kubeconfig.write(tmp_path / "kubeconfig", server=url)
    return Rest(info=info, url=url, kubeconfig=path, home=tmp_path)
