"""A real, secure control plane (as `skiff up` makes by default, decision 34)
with its REST front door (HTTPS) on a free port, and kubectl (/usr/bin/kubectl,
as installed) pointed at it through a private kubeconfig holding the admin's
certificate (and a private discovery cache), never ~/.kube/config. Raw HTTP
requests go through `rest.open` (the cluster CA and the admin's certificate);
in-process clients come from `rest.info.client()`."""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from skiff import kubeconfig
from tests.conftest import ControlPlaneInfo, free_port

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


@dataclass(frozen=True)
class Rest:
    info: ControlPlaneInfo
    url: str                # https://127.0.0.1:PORT
    kubeconfig: Path
    home: Path

    def open(self, request: urllib.request.Request | str, *, timeout: float = 30):
        """urllib's open as the admin (the cluster CA, the admin's certificate), never through a proxy."""
        pki = self.info.pki
        context = ssl.create_default_context(cafile=str(pki.ca_file))
        context.load_cert_chain(pki.cert_file("admin"), pki.key_file("admin"))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=context))
        return opener.open(request, timeout=timeout)

    def kubectl(self, *args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), HOME=str(self.home))
        return subprocess.run([KUBECTL, "--cache-dir", str(self.home / "cache"), *args], env=env,
                              capture_output=True, text=True, timeout=timeout, input=input)


@pytest.fixture
def rest(controlplane_factory, tmp_path) -> Rest:
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed")
    port = free_port()
    info = controlplane_factory("--rest-listen", f"127.0.0.1:{port}", secure=True)
    url = f"https://127.0.0.1:{port}"
    path = kubeconfig.write(tmp_path / "kubeconfig", server=url, credentials=info.pki.credentials("admin"))
    return Rest(info=info, url=url, kubeconfig=path, home=tmp_path)
