"""Shared fixtures: a real etcd and a real control plane on free loopback ports.

`etcd` (session): /usr/bin/etcd in a private temp dir; yields "127.0.0.1:PORT".
`etcd_prefix` (function): a fresh key root ("/skiff-test-<random>") so tests
    sharing the session's etcd never see each other's objects.
`controlplane` (function): `python -m controlplane.main` against that etcd and a
    fresh prefix; yields its API address "127.0.0.1:PORT". `controlplane_info`
    gives the same as a ControlPlaneInfo (metrics address, pid, log path);
    `controlplane_factory` starts more, with extra command-line flags, and
    `secure=True` a secure one (decision 34): a cluster CA in the test's temp
    dir (skiff.pki.ClusterPki, `info.pki`), TLS and authorization on the API.
    Either way `info.client()` is a client as `skiff` makes one, from the
    client config written beside it (`info.client_config`: the server, and on a
    secure API the admin's certificate) - skiff.config.connect, the one helper
    every harness uses.
Every process is stopped by its PID and every directory removed, even when the
test fails.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bench._cluster import free_port  # noqa: F401  (the tests' and benchmarks' one port picker)

if TYPE_CHECKING:
    from skiff.pki import ClusterPki

ROOT = Path(__file__).resolve().parents[1]
ETCD = "/usr/bin/etcd"


def _stop(proc: subprocess.Popen, *, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_until(check, *, proc: subprocess.Popen, what: str, log: Path, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        if check():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {deadline_s}s:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.05)


def remove_cgroup_parent(parent: str) -> None:
    """Remove a test's cgroup parent (deepest first) from every hierarchy."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        d = hierarchy / parent
        if d.is_dir():
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                sub.rmdir()
            d.rmdir()


@pytest.fixture
def unused_port() -> int:
    """A free TCP port on 127.0.0.1 (nothing listens there)."""
    return free_port()


@pytest.fixture(scope="session")
def etcd():
    """A real etcd on free loopback ports; yields its client endpoint "127.0.0.1:PORT"."""
    with _running_etcd() as endpoint:
        yield endpoint


@pytest.fixture
def private_etcd():
    """An etcd of this test's own (a test that reads etcd-wide figures, such as its watcher count,
    which other tests' watches on the shared one would move)."""
    with _running_etcd() as endpoint:
        yield endpoint


@contextlib.contextmanager
def _running_etcd():
    if not os.path.exists(ETCD):
        pytest.skip(f"{ETCD} is not installed (Debian package etcd-server)")
    workdir = Path(tempfile.mkdtemp(prefix="skiff-test-etcd-"))
    client_port, peer_port = free_port(), free_port()
    endpoint = f"127.0.0.1:{client_port}"
    log = workdir / "etcd.log"
    proc = None
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [ETCD, "--name", "skiff-test", "--data-dir", str(workdir / "data"),
                 "--listen-client-urls", f"http://{endpoint}", "--advertise-client-urls", f"http://{endpoint}",
                 "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                 "--initial-cluster", f"skiff-test=http://127.0.0.1:{peer_port}",
                 "--log-level", "warn", "--logger", "zap"],
                stdout=out, stderr=subprocess.STDOUT)

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://{endpoint}/health", timeout=1) as r:
                    return b'"true"' in r.read()
            except OSError:
                return False

        _wait_until(healthy, proc=proc, what="etcd", log=log)
        yield endpoint
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def etcd_prefix() -> str:
    """A key root of its own for one test, so tests sharing etcd stay apart."""
    return f"/skiff-test-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class ControlPlaneInfo:
    address: str          # the gRPC API, "127.0.0.1:PORT"
    metrics_address: str  # the /metrics HTTP endpoint, "127.0.0.1:PORT"
    etcd: str
    etcd_prefix: str
    pid: int
    log: Path             # its stderr (removed after the test; read it inside the test)
    client_config: Path   # a skiff client config (context "test") for this API
    pki: "ClusterPki | None" = None   # a secure API's CA and certificates, else None

    def client(self):
        """A new ApiClient for this API, with the admin's certificate when it is secure."""
        from skiff.config import connect
        return connect(path=self.client_config)


def write_client_config(path: Path, *, server: str, pki: "ClusterPki | None" = None) -> Path:
    """A skiff client config (one context, "test") for `server`, with the admin's files of `pki`."""
    from skiff.config import ClientConfig, write_context
    config = ClientConfig(server=server) if pki is None else ClientConfig(
        server=server, certificate_authority=str(pki.ca_file), client_certificate=str(pki.cert_file("admin")),
        client_key=str(pki.key_file("admin")))
    write_context(path=path, name="test", config=config)
    return path


def _api_answers(client_config: Path) -> bool:
    from skiff.client import ApiError
    from skiff.config import connect

    async def probe() -> bool:
        client = connect(path=client_config)
        try:
            await client.list("Node", timeout=2)
            return True
        except ApiError:
            return False
        finally:
            await client.close()

    return asyncio.run(probe())


def make_pki(directory: Path) -> "ClusterPki":
    """A cluster CA and the API's, admin's and control plane's certificates in `directory` (kept if there)."""
    from skiff.pki import ClusterPki
    pki = ClusterPki(directory)
    pki.ensure_cluster(api_addresses=[], service_cluster_ip="10.96.0.1")
    return pki


@contextlib.contextmanager
def _running_controlplane(*, etcd: str, etcd_prefix: str, workdir: Path, extra_args: tuple[str, ...] = (),
                          api_port: int | None = None, secure: bool = False):
    from skiff.cli._cluster import controlplane_tls_flags
    api_port, metrics_port = api_port or free_port(), free_port()
    log = workdir / f"controlplane-{api_port}.log"
    address = f"127.0.0.1:{api_port}"
    pki = make_pki(workdir / "pki") if secure else None
    client_config = write_client_config(workdir / f"client-config-{api_port}", server=address, pki=pki)
    args = [sys.executable, "-m", "controlplane.main", "--etcd", etcd, "--etcd-prefix", etcd_prefix,
            "--listen", address, "--metrics-listen", f"127.0.0.1:{metrics_port}",
            # The REST front door on a port of its own (a test wanting it passes --rest-listen again).
            "--log-level", "debug", "--rest-listen", "127.0.0.1:0",
            # The session's etcd serves plain HTTP (shared by every test).
            *(controlplane_tls_flags(pki, etcd_tls=False) if pki is not None else ()), *extra_args]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until(lambda: _api_answers(client_config), proc=proc, what="skiff-controlplane", log=log)
        yield ControlPlaneInfo(address=address, metrics_address=f"127.0.0.1:{metrics_port}",
                               etcd=etcd, etcd_prefix=etcd_prefix, pid=proc.pid, log=log,
                               client_config=client_config, pki=pki)
    finally:
        _stop(proc)


@pytest.fixture
def controlplane_factory(etcd, etcd_prefix):
    """start(*extra_args, prefix=None, api_port=None, secure=False) -> ControlPlaneInfo: more
    control planes (e.g. a restart on the same etcd prefix and port; stop the
    old one first with stop(info)); all stopped after the test. Secure ones of
    one test share one CA (workdir/pki)."""
    # Logs go to a private temp dir removed afterwards; a failing start prints their tail.
    workdir = Path(tempfile.mkdtemp(prefix="skiff-test-cp-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        running: dict[int, contextlib.ExitStack] = {}

        def start(*extra_args: str, prefix: str | None = None, api_port: int | None = None,
                  secure: bool = False) -> ControlPlaneInfo:
            own = stack.enter_context(contextlib.ExitStack())
            info = own.enter_context(_running_controlplane(
                etcd=etcd, etcd_prefix=prefix or etcd_prefix, workdir=workdir, extra_args=extra_args,
                api_port=api_port, secure=secure))
            running[info.pid] = own
            return info

        def stop(info: ControlPlaneInfo) -> None:
            running.pop(info.pid).close()

        start.stop = stop  # type: ignore[attr-defined]
        yield start


@pytest.fixture
def controlplane_info(controlplane_factory):
    """A real control plane (`python -m controlplane.main`) on free ports against
    the session's etcd under a fresh prefix; yields ControlPlaneInfo."""
    return controlplane_factory()


@pytest.fixture
def controlplane(controlplane_info) -> str:
    """The API address "127.0.0.1:PORT" of a real control plane (fresh, empty)."""
    return controlplane_info.address
