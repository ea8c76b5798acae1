"""`python -m agent.main` as a process: flags, registration, /metrics, SIGTERM."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from skiff.client import ApiClient, ApiError
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def test_main_imports_no_grpc_up_front():
    # Flag errors and --help answer without paying for grpc: importing main must not pull it in.
    code = "import sys, agent.main; assert 'grpc' not in sys.modules, sorted(m for m in sys.modules if 'grpc' in m)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, check=True)


def test_the_resident_agent_imports_no_rare_path_modules():
    # What agent.main imports for the linux runtime; image unpacking (tarfile) is imported only when used,
    # and of pyroute2 only the parts the agent uses: not its package __init__, which imports all of it
    # (NDB with sqlite3 included; docs/architecture.md, "agent memory").
    code = ("import sys, agent.main, agent.app, agent.imagepuller, agent.images.store, agent.network\n"
            "import agent.network.links, agent.network.conntrack\n"
            "print(sorted(m for m in ('tarfile', 'pyroute2.ndb', 'sqlite3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("flags,message", [
    (["--node-ip", "not-an-ip"], "--node-ip"),
    (["--server", "nohostport"], "--server"),
    (["--data-dir", "relative"], "--data-dir"),
    (["--pids-limit", "0"], "--pids-limit"),
])
def test_bad_flags_exit_2_naming_the_flag(flags, message):
    proc = subprocess.run([sys.executable, "-m", "agent.main", "--node-name", "n1", *flags], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.etcd
@pytest.mark.slow
def test_agent_process_registers_serves_metrics_and_stops_on_sigterm(controlplane, tmp_path):
    port, metrics_port = free_port(), free_port()
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.main", "--server", controlplane, "--node-name", "node-proc",
             "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{metrics_port}",
             "--data-dir", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"), "--runtime", "fake"],
            cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT)
    try:
        async def ready_node():
            async with ApiClient(controlplane) as client:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    assert proc.poll() is None, log.read_text()
                    try:
                        node = await client.get("Node", "node-proc", "")
                        if any(c.type == "Ready" and c.status == "True" for c in node.status.conditions):
                            return node
                    except ApiError:
                        pass
                    await asyncio.sleep(0.1)
                raise AssertionError(f"node never Ready:\n{log.read_text()}")
        node = asyncio.run(ready_node())
        assert node.status.daemon_endpoints.kubelet_endpoint.port == port
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        assert 'skiff_agent_pods{node="node-proc",phase="Running"} 0.0' in text
        assert "kubelet_runtime_operations_duration_seconds" in text
        # kubelet's cAdvisor path: the node's own series before any pod runs, and
        # the address the control plane's http_sd list reads from the Node.
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics/cadvisor", timeout=10) as r:
            cadvisor = r.read().decode()
        assert 'machine_cpu_cores{node="node-proc"}' in cadvisor
        assert 'node_memory_MemTotal_bytes{node="node-proc"}' in cadvisor
        assert node.metadata.annotations["skiff.io/metrics-address"] == f"127.0.0.1:{metrics_port}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("which", ["--listen", "--metrics-listen"])
def test_taken_port_is_one_line_naming_the_flag(tmp_path, which):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        ports = {"--listen": f"127.0.0.1:{free_port()}", "--metrics-listen": f"127.0.0.1:{free_port()}", which: busy}
        proc = subprocess.run(
            [sys.executable, "-m", "agent.main", "--server", "127.0.0.1:1", "--node-name", "n1", "--runtime", "fake",
             "--data-dir", str(tmp_path / "d"), "--run-dir", str(tmp_path / "r"), *[x for kv in ports.items() for x in kv]],
            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert which in proc.stderr and busy in proc.stderr and "Traceback" not in proc.stderr
