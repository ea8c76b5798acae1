"""The metrics a user puts on a dashboard, scraped by a real Prometheus.

A private all-in-one cluster (`skiff up --detach` on free loopback ports, the
`private_cluster` fixture of conftest.py) runs one pod to completion and keeps
one running; Debian's `prometheus` scrapes the control plane's and the
agent's /metrics every second, and the test asks Prometheus' HTTP API what a
dashboard would show: both targets up, API requests by method and code, the
request latency histogram, scheduling attempts, pods by phase on the node and
the running container's memory working set.

Prometheus runs from a temp dir of its own and is stopped by its PID; the
cluster is removed with `skiff down --purge` by the fixture.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
# The stats loop of the agent runs every 15 s and Prometheus scrapes every
# second: this is how long a value may take to show up, not an expectation.
SETTLE_SECONDS = 90.0
# No proxy: an http_proxy in the environment must not intercept loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

MANIFEST = """\
apiVersion: v1
kind: Pod
metadata: {{name: {done}}}
spec:
  restartPolicy: Never
  containers:
  - {{name: main, image: busybox, command: [sh, -c, "echo done"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: {sleeper}}}
spec:
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
    resources: {{limits: {{memory: 32Mi}}}}
"""


@dataclass
class Prometheus:
    address: str
    proc: subprocess.Popen
    log: Path

    def query(self, promql: str) -> list[dict]:
        """An instant query; returns Prometheus' result vector."""
        url = f"http://{self.address}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with _OPENER.open(url, timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def values(self, promql: str) -> dict[tuple, float]:
        """The result as {sorted labels (without __name__): value}."""
        return {tuple(sorted((k, v) for k, v in s["metric"].items() if k != "__name__")): float(s["value"][1])
                for s in self.query(promql)}

    def eventually(self, promql: str, check, *, what: str) -> dict[tuple, float]:
        """Poll until check(values) holds; fail naming the query and the last answer."""
        deadline = time.monotonic() + SETTLE_SECONDS
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                last = self.values(promql)
                if check(last):
                    return last
            except (OSError, urllib.error.URLError) as exc:  # still starting
                last = exc
            time.sleep(0.5)
        pytest.fail(f"{what}: `{promql}` never satisfied; last answer: {last}")


@pytest.fixture
def prometheus_factory():
    """Start Prometheus on a free loopback port scraping the given targets
    every second; stopped by PID and its temp dir removed afterwards."""
    if not os.path.exists(PROMETHEUS):
        pytest.skip("prometheus is not installed (apt-get install --no-install-recommends prometheus)")
    started: list[tuple[subprocess.Popen, Path]] = []

    def start(*, jobs: dict[str, str]) -> Prometheus:
        base = Path(tempfile.mkdtemp(prefix="skiff-test-prometheus-"))
        started.append((None, base))  # the dir is removed even if Popen fails
        config = base / "prometheus.yml"
        # JSON is YAML: no quoting questions.
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            # A target may name its path: "HOST:PORT/metrics/cadvisor".
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target.partition("/")[0]]}],
                                "metrics_path": "/" + (target.partition("/")[2] or "metrics")}
                               for job, target in jobs.items()]}, indent=2))
        address = f"127.0.0.1:{free_port()}"
        log = base / "prometheus.log"
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={base / 'data'}",
                 f"--web.listen-address={address}", "--storage.tsdb.retention.time=1h"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=base, env=env)
        started[-1] = (proc, base)
        return Prometheus(address=address, proc=proc, log=log)

    try:
        yield start
    finally:
        for proc, base in started:
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
            shutil.rmtree(base, ignore_errors=True)


def test_dashboard_metrics_through_prometheus(private_cluster, prometheus_factory, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    node = f"skiff-test-{secrets.token_hex(4)}"
    boot = c.skiff("image", "--data-dir", str(c.data_dir), "bootstrap", "busybox")
    assert boot.returncode == 0, boot.stderr
    # The last --node-name wins over the fixture's default. A generous start
    # timeout: other clusters may be starting on this machine at the same time.
    up = c.skiff(*c.up_args("--detach", "--node-name", node, "--start-timeout", "120")[3:], timeout=400)
    assert up.returncode == 0, up.stderr + _log_tails(c)

    done, sleeper = "skiff-test-done", "skiff-test-sleeper"
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(MANIFEST.format(done=done, sleeper=sleeper))
    applied = c.skiff("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [f"pod/{done} created", f"pod/{sleeper} created"]
    missing = c.skiff("get", "pods", "skiff-test-missing")  # one failed call, counted by its code
    assert missing.returncode != 0
    for name, phase in ((done, "Succeeded"), (sleeper, "Running")):
        waited = c.skiff("wait", "pod", name, f"--for=jsonpath={{.status.phase}}={phase}", "--timeout", "120s")
        assert waited.returncode == 0, waited.stderr + c.skiff("describe", "pod", name).stdout + _log_tails(c)

    prom = prometheus_factory(jobs={"skiff-controlplane": f"127.0.0.1:{c.ports['cpm']}",
                                    "skiff-agent": f"127.0.0.1:{c.ports['agentm']}",
                                    "cadvisor": f"127.0.0.1:{c.ports['agentm']}/metrics/cadvisor"})

    up_values = prom.eventually("up", lambda v: len(v) == 3 and all(x == 1 for x in v.values()),
                                what="every target scraped")
    assert {dict(k)["job"] for k in up_values} == {"skiff-controlplane", "skiff-agent", "cadvisor"}

    # API requests by verb, resource and HTTP code (kube-apiserver's names): the
    # two pods `apply` created (kubectl's client-side apply: GET, then POST), and
    # the GET of a pod that does not exist.
    cpm = f"127.0.0.1:{c.ports['cpm']}"
    prom.eventually('apiserver_request_total{verb="POST",resource="pods",subresource=""}',
                    lambda v: v == {(("code", "201"), ("instance", cpm), ("job", "skiff-controlplane"),
                                     ("resource", "pods"), ("verb", "POST")): 2.0},   # "" labels are dropped
                    what="the two creations counted with code 201")
    prom.eventually('apiserver_request_total{verb="GET",resource="pods",code="404"}',
                    lambda v: sum(v.values()) >= 1, what="the GET of a missing pod counted as 404")
    # The latency histogram has buckets, cumulative, ending in +Inf = the count.
    buckets = prom.eventually('apiserver_request_duration_seconds_bucket{verb="POST",resource="pods",'
                              'subresource=""}', lambda v: len(v) > 2, what="POST latency buckets")
    by_le = {dict(k)["le"]: n for k, n in buckets.items()}
    assert by_le["+Inf"] == 2.0
    ordered = [n for _le, n in sorted(((float(le), n) for le, n in by_le.items()))]
    assert ordered == sorted(ordered), f"buckets are not cumulative: {by_le}"
    assert prom.values('histogram_quantile(0.99, sum by (le) '
                       '(apiserver_request_duration_seconds_bucket{verb="POST"}))')

    # Scheduling: both pods were placed.
    prom.eventually('scheduler_schedule_attempts_total{result="scheduled"}',
                    lambda v: sum(v.values()) >= 2, what="scheduling attempts counted")
    prom.eventually("scheduler_scheduling_attempt_duration_seconds_count",
                    lambda v: sum(v.values()) >= 2, what="scheduling latency observed")

    # Pods by phase on the node.
    phases = prom.eventually(f'skiff_agent_pods{{node="{node}"}}',
                             lambda v: _phase(v, "Succeeded") == 1 and _phase(v, "Running") == 1,
                             what="pods by phase on the node")
    assert _phase(phases, "Pending") == 0 and _phase(phases, "Failed") == 0

    # The running container's memory working set.
    memory = prom.eventually(f'container_memory_working_set_bytes{{pod="{sleeper}"}}',
                             lambda v: len(v) == 1 and all(x > 0 for x in v.values()),
                             what="memory working set of the running container")
    labels = dict(next(iter(memory)))
    assert (labels["namespace"], labels["container"]) == ("default", "main")
    # ... and below the limit its cgroup enforces.
    assert next(iter(memory.values())) < 32 * 2**20


def _phase(values: dict[tuple, float], phase: str) -> float:
    return sum(n for k, n in values.items() if dict(k).get("phase") == phase)


def _log_tails(c) -> str:
    out = []
    for log in sorted((c.data_dir / "logs").glob("*.log")):
        out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
    return "\n".join(out)
