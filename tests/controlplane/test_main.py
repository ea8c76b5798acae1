"""The skiff-controlplane process: /metrics, clean SIGTERM, bad flags."""
import asyncio
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from proto.skiff.v1 import types_pb2
from skiff.client import ApiClient, Unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.etcd
def test_metrics_count_requests_and_scheduling(controlplane_info):
    async def body():
        async with ApiClient(controlplane_info.address) as c:
            p = types_pb2.Pod()
            p.metadata.name = "m"
            p.spec.containers.add(name="c", image="busybox")
            await c.apply(p)
            await c.get("Pod", "m")
            for _ in range(200):  # the scheduler finds no node: one "unschedulable" attempt
                text = urllib.request.urlopen(f"http://{controlplane_info.metrics_address}/metrics").read().decode()
                if 'scheduler_schedule_attempts_total{profile="default-scheduler",result="unschedulable"}' in text:
                    return text
                await asyncio.sleep(0.05)
            return text
    text = asyncio.run(body())
    # Kubernetes' names: REST verbs, plural resources, HTTP codes.
    assert 'apiserver_request_total{code="200",resource="pods",subresource="",verb="APPLY"} 1.0' in text
    assert 'apiserver_request_total{code="200",resource="pods",subresource="",verb="GET"}' in text
    assert ('apiserver_request_duration_seconds_bucket{le="+Inf",resource="pods",subresource="",verb="APPLY"} 1.0'
            in text)
    assert 'scheduler_schedule_attempts_total{profile="default-scheduler",result="unschedulable"}' in text
    assert "scheduler_scheduling_attempt_duration_seconds_bucket" in text
    assert 'etcd_request_duration_seconds_count{operation="create",type="pods"}' in text
    assert 'leader_election_master_status{name="skiff-controlplane"} 1.0' in text
    # The watch cache serves the pod informers: the pod it received, the scheduler's watcher on it.
    assert 'apiserver_watch_cache_events_received_total{resource="pods"}' in text
    assert 'apiserver_watch_cache_initializations_total{resource="pods"} 1.0' in text
    watchers = re.search(r'^apiserver_registered_watchers\{resource="pods"\} (\S+)$', text, re.M)
    assert watchers and float(watchers.group(1)) >= 1, text
    assert "skiff_apiserver_requests_total" not in text
    # One informer per kind for the whole process (one SharedInformerFactory), however
    # many controllers read pods and nodes; the kit's queues report under their names.
    assert 'skiff_informer_relists_total{kind="Pod",reason="initial"} 1.0' in text
    assert 'skiff_informer_relists_total{kind="Node",reason="initial"} 1.0' in text
    assert 'workqueue_adds_total{name="scheduler"}' in text


def _port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(*args: str) -> tuple[subprocess.Popen, str]:
    address = f"127.0.0.1:{_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "controlplane.main", "--listen", address,
                             "--metrics-listen", f"127.0.0.1:{_port()}", "--rest-listen", f"127.0.0.1:{_port()}",
                             *args],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, address


async def _until_listening(address: str, proc: subprocess.Popen) -> None:
    host, port = address.rsplit(":", 1)
    for _ in range(400):
        assert proc.poll() is None, proc.stderr.read()
        try:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on {address}")


@pytest.mark.etcd
def test_sigterm_stops_cleanly(etcd, etcd_prefix):
    proc, address = _start("--etcd", etcd, "--etcd-prefix", etcd_prefix)
    try:
        asyncio.run(_until_listening(address, proc))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "shutting down" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_api_answers_unavailable_naming_etcd_when_etcd_is_down():
    dead_etcd = f"127.0.0.1:{_port()}"
    proc, address = _start("--etcd", dead_etcd, "--no-controllers")
    try:
        async def body():
            await _until_listening(address, proc)
            async with ApiClient(address) as c:
                with pytest.raises(Unavailable) as err:
                    await c.get("Pod", "x", timeout=60)
                return str(err.value)
        message = asyncio.run(body())
        assert dead_etcd in message and "etcd" in message
        assert proc.poll() is None  # still serving
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_bad_flags_are_refused_with_a_clear_message():
    run = subprocess.run([sys.executable, "-m", "controlplane.main", "--cluster-cidr", "10.244.0.0/16",
                          "--node-cidr-mask-size", "8"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "--node-cidr-mask-size 8: must be longer than the cluster CIDR's /16" in run.stderr


