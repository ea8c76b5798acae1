"""The console pages' charts as a person sees them: a private cluster with
`skiff up --monitoring` runs a CPU burner; once Prometheus holds its series,
real headless Chromium opens /consoles/skiff-overview.html, skiff-node.html
and skiff-pod.html from that Prometheus and the test reads the DOM the
browser built: every chart container holds an SVG with drawn line paths, and
no chart says "No timeseries returned" or "Error loading data". A screenshot
of the overview is taken as well (a PNG that is not blank).

Chromium talks only to the loopback Prometheus: it runs with a new empty
profile and without background networking, component updates, sync or QUIC.
Every wait is bounded; nothing asserts how fast anything is.
"""
from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from html.parser import HTMLParser

import pytest

from tests.conftest import free_port
from tests.e2e.test_monitoring import PromApi

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

WORKLOAD = """\
apiVersion: v1
kind: Pod
metadata: {name: burner}
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "while :; do :; done"]
    resources: {limits: {cpu: 200m}}
"""

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1300,1500", "--virtual-time-budget=15000")

PAGES = {
    "skiff-overview.html": ("chart-cpu", "chart-memory", "chart-pods", "chart-api"),
    "skiff-node.html?node={node}": ("chart-node-cpu", "chart-node-memory", "chart-node-pod-cpu",
                                    "chart-node-pod-memory"),
    "skiff-pod.html?namespace=default&pod=burner": ("chart-pod-cpu", "chart-pod-memory", "chart-pod-restarts"),
}


class Charts(HTMLParser):
    """Per chart container (div.skiff_graph id=...): how many <path> with a
    drawn line (a `d` with more than one point) and <svg> it holds, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict] = {}
        self._stack: list[str | None] = []   # the chart each open element belongs to

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        current = self._stack[-1] if self._stack else None
        if tag == "div" and "skiff_graph" in (a.get("class") or "").split():
            current = a.get("id")
            self.charts[current] = {"svg": 0, "lines": 0, "text": ""}
        if current is not None:
            if tag == "svg":
                self.charts[current]["svg"] += 1
            if tag == "path" and len(re.findall(r"[ML]", a.get("d") or "")) > 1:
                self.charts[current]["lines"] += 1
        if tag not in ("meta", "link", "br", "img", "input", "hr", "path", "rect", "line", "circle"):
            self._stack.append(current)

    def handle_endtag(self, tag):
        if tag not in ("meta", "link", "br", "img", "input", "hr", "path", "rect", "line", "circle") and self._stack:
            self._stack.pop()

    def handle_data(self, data):
        if self._stack and self._stack[-1] is not None:
            self.charts[self._stack[-1]]["text"] += data


def chromium(*args: str, profile) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or pytest.skip("chromium is not installed (deploy/install.sh --test)")
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def test_console_pages_draw_their_charts_in_chromium(private_cluster, tmp_path):
    c = private_cluster
    prom_port = free_port()
    node = f"skiff-test-{secrets.token_hex(3)}"
    up = c.skiff(*c.up_args("--detach", "--monitoring", "--prometheus-port", str(prom_port), "--node-name", node,
                            "--start-timeout", "120")[3:], timeout=400)
    assert up.returncode == 0, up.stdout + up.stderr
    (tmp_path / "workload.yaml").write_text(WORKLOAD)
    applied = c.skiff("apply", "-f", str(tmp_path / "workload.yaml"))
    assert applied.returncode == 0, applied.stderr
    deadline = time.monotonic() + 120
    while (got := c.skiff("get", "pod", "burner", "-o", "jsonpath={.status.phase}")).stdout != "Running":
        assert time.monotonic() < deadline, got.stdout + got.stderr + c.skiff("describe", "pod", "burner").stdout
        time.sleep(1)

    # Each chart needs at least two points of its series in Prometheus before a line can be drawn.
    prom = PromApi(f"127.0.0.1:{prom_port}")
    for query in ('sum(rate(container_cpu_usage_seconds_total{pod="burner",image!=""}[1m]))',
                  'sum(rate(apiserver_request_total[1m]))', 'sum(kube_pod_status_phase)',
                  f'node_memory_MemAvailable_bytes{{node="{node}"}}',
                  'kube_pod_container_status_restarts_total{pod="burner"}'):
        prom.eventually(f"two points of {query}", lambda q=query: prom.get(
            "/api/v1/query_range", query=q, start=str(time.time() - 600), end=str(time.time()), step="5")["result"],
            lambda result: result and len(result[0]["values"]) >= 2)

    for path, ids in PAGES.items():
        url = f"http://127.0.0.1:{prom_port}/consoles/{path.format(node=node)}"
        profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
        profile.mkdir()
        dumped = chromium("--dump-dom", url, profile=profile)
        assert dumped.returncode == 0, dumped.stderr[-2000:]
        dom = dumped.stdout
        assert "No timeseries returned" not in dom and "Error loading data" not in dom, (path, dom[-3000:])
        charts = Charts()
        charts.feed(dom)
        assert set(charts.charts) == set(ids), (path, charts.charts)
        for chart, seen in charts.charts.items():
            assert seen["svg"] >= 1 and seen["lines"] >= 1, (path, chart, seen)

    shot = tmp_path / "overview.png"
    profile = tmp_path / "profile-shot"
    profile.mkdir()
    taken = chromium(f"--screenshot={shot}", f"http://127.0.0.1:{prom_port}/consoles/skiff-overview.html",
                     profile=profile)
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, len(png)
