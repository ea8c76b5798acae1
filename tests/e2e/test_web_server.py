"""The seed's example end to end, as a person runs it: `skiff up`, the offline
Debian+python base, `skiff build -t my-web-server`, `skiff apply` of the
manifest publishing hostPort 5000, and an HTTP request to 127.0.0.1 answered
from inside the container (the `docker run -p 5000:5000` path).

The base takes a debootstrap from the machine's apt sources (~1 min), so it is
made once per machine into a saved archive under /var/cache/skiff-test and
loaded into each private cluster with `skiff image load`.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "manifests" / "examples" / "web-server"
BASE = "debian-python:bookworm"
BASE_CACHE = Path(os.environ.get("SKIFF_TEST_CACHE", "/var/cache/skiff-test")) / "debian-python-bookworm.tar"


def _skiff(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skiff.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _cached_base() -> Path:
    """The Debian+python base as an image archive, bootstrapped once per machine."""
    if BASE_CACHE.exists():
        return BASE_CACHE
    BASE_CACHE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="skiff-test-base-") as tmp:
        made = _skiff("image", "bootstrap", "debian", "--include", "python3", "--data-dir", tmp)
        assert made.returncode == 0, made.stdout + made.stderr
        partial = BASE_CACHE.with_suffix(".partial")
        saved = _skiff("image", "save", "--data-dir", tmp, "-o", str(partial), BASE)
        assert saved.returncode == 0, saved.stderr
        partial.rename(BASE_CACHE)
    return BASE_CACHE


def _host_port() -> int:
    """5000 as in the example, unless something on this machine already has it."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 5000))
            return 5000
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def _get(url: str, *, attempts: int = 50) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy
    for _ in range(attempts):
        try:
            with opener.open(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no answer from {url}")


def test_build_and_serve_the_web_server_example(private_cluster, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    base = _cached_base()

    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr
    data = ["--data-dir", str(c.data_dir)]
    loaded = c.skiff("image", "load", *data, "-i", str(base))
    assert loaded.returncode == 0, loaded.stderr

    built = c.skiff("build", *data, "-t", "my-web-server", str(EXAMPLE), timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "COPY app.py /app.py" in built.stdout
    images = c.skiff("image", "ls", *data).stdout
    assert any(line.split()[:2] == ["my-web-server", "latest"] for line in images.splitlines()), images

    port = _host_port()
    manifest = tmp_path / "pod.yaml"
    manifest.write_text((EXAMPLE / "pod.yaml").read_text().replace("hostPort: 5000", f"hostPort: {port}"))
    applied = c.skiff("apply", "-f", str(manifest))
    assert (applied.returncode, applied.stdout) == (0, "pod/web-server created\n"), applied.stderr
    ready = c.skiff("wait", "pod", "web-server", "--for=condition=Ready", "--timeout", "120s")
    assert ready.returncode == 0, ready.stderr + c.skiff("describe", "pod", "web-server").stdout

    # Published on the node like `docker run -p 5000:5000`: 127.0.0.1 reaches the container.
    body = _get(f"http://127.0.0.1:{port}/")
    assert body == "Hello from Skiff! I am web-server, version v1\n"
    logs = c.skiff("logs", "web-server")
    assert '"GET / HTTP/1.1" 200' in logs.stdout, logs.stdout + logs.stderr

    deleted = c.skiff("delete", "pod", "web-server", "--timeout", "60s")
    assert deleted.returncode == 0, deleted.stderr
    with pytest.raises(AssertionError):
        _get(f"http://127.0.0.1:{port}/", attempts=3)  # the published port is gone with the pod
