"""The seed's example end to end below the cluster: build
manifests/examples/web-server on the Debian+python base and serve HTTP from a
container of Skiff's runtime.

The base comes from the node's store (`skiff image bootstrap debian --include
python3` made it; SKIFF_TEST_BASE_STORE overrides where to look), copied
into a private store through save/load; the test is skipped when it is absent
rather than downloading Debian.
"""
from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
import urllib.request
from pathlib import Path

import pytest

from agent.images.archive import load_archive, save_archive
from agent.images.builder import BuildOptions, build
from agent.images.store import ImageStore
from tests.conftest import remove_cgroup_parent

ROOT = Path(__file__).resolve().parents[3]
BASE_STORE = Path(os.environ.get("SKIFF_TEST_BASE_STORE", "/var/lib/skiff/images"))
BASE = "debian-python:bookworm"

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _base_present() -> bool:
    return (BASE_STORE / "index.json").exists() and ImageStore(root=BASE_STORE).resolve(BASE) is not None


@pytest.mark.skipif(not _base_present(), reason=f"{BASE} not in {BASE_STORE} "
                    "(skiff image bootstrap debian --include python3)")
def test_web_server_example_serves_http(store, tmp_dir):
    save_archive(store=ImageStore(root=BASE_STORE), refs=(BASE,), path=tmp_dir / "base.tar")
    load_archive(store=store, path=tmp_dir / "base.tar")
    build(store=store, options=BuildOptions(context=ROOT / "manifests/examples/web-server",
                                            tags=("my-web-server",)), out=io.StringIO())
    img = store.resolve("my-web-server")
    assert img.config.cmd == ("python3", "/app.py") and img.config.exposed_ports == ("5000/tcp",)
    body, log = asyncio.run(_serve(img=img, run_dir=tmp_dir / "run"))
    assert body.startswith("Hello from Skiff!") and "web-server-test" in body
    assert '"GET / HTTP/1.1" 200' in log


async def _serve(*, img, run_dir: Path) -> tuple[str, str]:
    from agent.runtime.interface import ContainerConfig, SandboxConfig
    from agent.runtime.linux import LinuxRuntime

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pod = "skiff-test-web-" + os.urandom(4).hex()
    runtime = LinuxRuntime(run_dir=run_dir, cgroup_parent=pod)
    log = run_dir / "web.log"
    try:
        await runtime.create_sandbox(SandboxConfig(pod_id=pod, namespace="default", name="web",
                                                   hostname="web-server-test", host_network=True))
        env = tuple(tuple(e.split("=", 1)) for e in img.config.env) + (("PORT", str(port)),)
        await runtime.start(ContainerConfig(
            id=pod + "-c", pod_id=pod, name="web", image=img.reference, image_id=img.id,
            lower_dirs=img.lower_dirs, args=img.config.cmd, env=env, log_path=log))
        body = ""
        for _ in range(200):   # python's start inside the container; not a timing assertion
            try:
                body = await asyncio.to_thread(
                    lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode())
                break
            except OSError:
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)
        return body, log.read_text() if log.exists() else ""
    finally:
        await runtime.remove(pod + "-c")
        await runtime.remove_sandbox(pod)
        runtime.close()
        remove_cgroup_parent(pod)
        shutil.rmtree(run_dir, ignore_errors=True)
