"""`skiff up --monitoring`: a person's Prometheus on their cluster, as they see it.

A private all-in-one cluster starts with Debian's prometheus as a supervised
component (on a free loopback port, Skiff's config, rules and alerts). The
test runs a CPU burner, a memory-hungry container and a crash-looping one,
and asks Prometheus' HTTP API what a Kubernetes dashboard would: every
target found through the control plane's http_sd lists and up; cAdvisor's
series with the labels dashboards join on (the burner's CPU counter grows,
the hungry container's working set holds what it allocated, below its
limit); kube-state-metrics' families; the API server's requests under
Kubernetes' names; the rules loaded, and KubePodCrashLooping firing for the
crashing pod in Prometheus' /api/v1/alerts (the cluster is started with
`--monitoring-rule-for-scale 0.02`, so the alert's `for: 15m` is 18 s). A
pod annotated prometheus.io/scrape that appears after Prometheus started is
discovered and scraped. Every panel of the Grafana
dashboards in deploy/monitoring/dashboards returns series, and Prometheus
serves the console page filled in. `skiff top` shows the same containers.
`skiff down --purge` stops Prometheus and removes its data.

Every wait is bounded (the scrape and refresh interval is 15 s); nothing
asserts how fast anything is. Prometheus scrapes loopback only: the
annotated pod uses the host's network on 127.0.0.1.
"""
from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import ROOT, alive

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

DASHBOARDS = ROOT / "deploy" / "monitoring" / "dashboards"
SETTLE_SECONDS = 150.0   # two stats passes, scrapes and sd refreshes of 15 s each, on a busy machine
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MiB = 1 << 20

WORKLOAD = """\
apiVersion: v1
kind: Pod
metadata: {name: burner}
spec:
  containers:
  - name: main
    image: busybox
    # 8 MiB written into its writable layer, then a busy loop.
    command: [sh, -c, "head -c 8388608 /dev/zero > /scratch; while :; do :; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: hungry}
spec:
  containers:
  - name: main
    image: busybox
    # 48 MB held in a shell variable for as long as the pod runs (the last command uses
    # it, so the shell cannot exec sleep in its place).
    command: [sh, -c, "x=$(yes aaaaaaaaaaaaaaa | head -c 48000000); echo held ${#x}; sleep 3600; echo ${#x}"]
    resources: {limits: {memory: 256Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  containers:
  - {name: main, image: busybox, command: [sh, -c, "exit 3"]}
"""

SCRAPED = """\
apiVersion: v1
kind: Pod
metadata:
  name: exporter
  labels: {app: exporter}
  annotations: {prometheus.io/scrape: "true", prometheus.io/port: "%(port)d", prometheus.io/path: /custom}
spec:
  hostNetwork: true
  containers:
  - name: web
    image: busybox
    command: [sh, -c, "mkdir -p /www && echo 'skiff_test_exporter_up 1' > /www/custom && exec httpd -f -p 127.0.0.1:%(port)d -h /www"]
    ports: [{name: metrics, containerPort: %(port)d}]
"""


class PromApi:
    def __init__(self, address: str) -> None:
        self.address = address

    def get(self, path: str, **params: str) -> dict:
        url = f"http://{self.address}{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        with _OPENER.open(url, timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def values(self, promql: str) -> dict[tuple, float]:
        return {tuple(sorted(s["metric"].items())): float(s["value"][1])
                for s in self.get("/api/v1/query", query=promql)["result"]}

    def eventually(self, what: str, fetch, check):
        deadline = time.monotonic() + SETTLE_SECONDS
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = fetch()
                if check(last):
                    return last
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last = exc
            time.sleep(1)
        pytest.fail(f"{what}: never; last answer: {last}")

    def series(self, promql: str, check, *, what: str) -> dict[tuple, float]:
        return self.eventually(f"{what} (`{promql}`)", lambda: self.values(promql), check)


def _one(values: dict[tuple, float]) -> tuple[dict, float]:
    assert len(values) == 1, values
    labels, value = next(iter(values.items()))
    return dict(labels), value


def test_up_with_monitoring_gives_dashboards_their_series(private_cluster, tmp_path):
    c = private_cluster
    prom_port = free_port()
    node = f"skiff-test-{secrets.token_hex(3)}"
    # Alerts' `for:` scaled by 0.02 (KubePodCrashLooping's 15m becomes 18s) so one fires within the test.
    up = c.skiff(*c.up_args("--detach", "--monitoring", "--prometheus-port", str(prom_port), "--node-name", node,
                            "--monitoring-rule-for-scale", "0.02", "--start-timeout", "120")[3:], timeout=400)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "starting prometheus ... ok" in up.stdout
    status = c.skiff("status", "--data-dir", str(c.data_dir))
    line = next(line for line in status.stdout.splitlines() if line.startswith("prometheus"))
    assert "healthy" in line and f"127.0.0.1:{prom_port}" in line, status.stdout
    prom = PromApi(f"127.0.0.1:{prom_port}")

    workload = tmp_path / "workload.yaml"
    workload.write_text(WORKLOAD)
    applied = c.skiff("apply", "-f", str(workload))
    assert applied.returncode == 0, applied.stderr
    for pod in ("burner", "hungry"):
        waited = c.skiff("wait", "pod", pod, "--for=condition=Ready", "--timeout", "120s")
        assert waited.returncode == 0, waited.stderr + c.skiff("describe", "pod", pod).stdout
    held = c.skiff("logs", "hungry")
    for _ in range(60):
        if "held" in held.stdout:
            break
        time.sleep(1)
        held = c.skiff("logs", "hungry")
    assert held.stdout.split()[:1] == ["held"] and int(held.stdout.split()[1]) >= 47_999_999, held.stdout

    # Every target from the http_sd lists, none written by hand, all up.
    def targets():
        return prom.get("/api/v1/targets", state="active")["activeTargets"]
    active = prom.eventually(
        "the cluster's targets up", targets,
        lambda ts: {(t["labels"]["job"], t["labels"].get("metrics_path", "")) for t in ts if t["health"] == "up"}
        >= {("apiserver", ""), ("kube-state-metrics", ""), ("etcd", ""), ("kubelet", "/metrics"),
            ("kubelet", "/metrics/cadvisor")})
    kubelet = [t for t in active if t["labels"]["job"] == "kubelet"]
    assert {t["labels"]["node"] for t in kubelet} == {node}
    assert {t["scrapeUrl"] for t in kubelet} == {f"http://127.0.0.1:{c.ports['agentm']}/metrics",
                                                 f"http://127.0.0.1:{c.ports['agentm']}/metrics/cadvisor"}

    # cAdvisor: the burner's CPU counter grows, with the labels dashboards join on.
    cpu_query = 'container_cpu_usage_seconds_total{job="kubelet",metrics_path="/metrics/cadvisor",pod="burner"}'
    first = prom.series(cpu_query, lambda v: len(v) == 1, what="the burner's CPU counter")
    labels, before = _one(first)
    assert (labels["namespace"], labels["container"], labels["node"]) == ("default", "main", node)
    assert "busybox" in labels["image"]
    prom.series(cpu_query, lambda v: len(v) == 1 and _one(v)[1] > before, what="the burner's CPU counter grows")
    assert prom.values(f'rate({cpu_query}[1m])')

    # The hungry container's working set holds its 48 MB, below its limit, as cAdvisor reports them.
    ws = prom.series('container_memory_working_set_bytes{pod="hungry",container="main"}',
                     lambda v: len(v) == 1 and _one(v)[1] >= 48_000_000, what="the hungry working set")
    assert _one(ws)[1] < 256 * MiB
    limit = prom.series('container_spec_memory_limit_bytes{pod="hungry",container="main"}',
                        lambda v: len(v) == 1, what="the memory limit")
    assert _one(limit)[1] == 256 * MiB
    assert prom.values('container_memory_rss{pod="hungry"}')
    prom.series('container_fs_usage_bytes{pod="burner",container="main"}',
                lambda v: len(v) == 1 and _one(v)[1] >= 8 * MiB, what="the burner's writable layer")
    prom.series(f'node_memory_MemAvailable_bytes{{node="{node}"}}', lambda v: len(v) == 1, what="node memory")
    prom.series(f'machine_cpu_cores{{node="{node}"}}', lambda v: len(v) == 1 and _one(v)[1] >= 1, what="cores")

    # kube-state-metrics' families, as alerts and dashboards select them.
    phase = prom.series('kube_pod_status_phase{job="kube-state-metrics",pod="burner",phase="Running"}',
                        lambda v: len(v) == 1 and _one(v)[1] == 1, what="the burner Running")
    assert _one(phase)[0]["namespace"] == "default"
    prom.series(f'kube_node_status_condition{{node="{node}",condition="Ready",status="true"}}',
                lambda v: len(v) == 1 and _one(v)[1] == 1, what="the node Ready")
    prom.series('kube_pod_container_status_restarts_total{pod="hungry",container="main"}',
                lambda v: len(v) == 1 and _one(v)[1] == 0, what="restarts")

    # The API server under Kubernetes' names; the rules and alerts loaded.
    # (apply is kubectl's client-side apply: a GET, then a POST creating each pod)
    prom.series('apiserver_request_total{job="apiserver",verb="POST",resource="pods",code="201"}',
                lambda v: sum(v.values()) >= 2, what="the pods created")
    prom.series('etcd_server_has_leader{job="etcd"}', lambda v: len(v) == 1 and _one(v)[1] == 1,
                what="etcd has a leader")
    groups = prom.get("/api/v1/rules")["groups"]
    alerts = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert {"KubeNodeNotReady", "KubePodCrashLooping", "KubeDeploymentReplicasMismatch", "EtcdNoLeader",
            "CPUThrottlingHigh"} <= alerts
    prom.series("namespace:container_memory_working_set_bytes:sum", lambda v: v, what="a recording rule")
    # A crash-looping pod makes KubePodCrashLooping fire, as Prometheus' alerts API
    # reports it (its `for: 15m` scaled to 18s by --monitoring-rule-for-scale).
    crashing = next(r for g in groups for r in g["rules"] if r["name"] == "KubePodCrashLooping")
    assert crashing["duration"] == 18

    def crash_alerts():
        return [a for a in prom.get("/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == "KubePodCrashLooping"]
    firing = prom.eventually("KubePodCrashLooping firing for the crashing pod", crash_alerts,
                             lambda alerts: any(a["state"] == "firing" for a in alerts))
    alert = next(a for a in firing if a["state"] == "firing")
    assert (alert["labels"]["namespace"], alert["labels"]["pod"], alert["labels"]["container"]) == (
        "default", "crash", "main")
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["summary"] == "Pod is crash looping."

    # Every panel of the Grafana dashboards shows series on this cluster (its
    # template variables set to this node and the burner), and Prometheus serves
    # the console page with the same views, filled in.
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = (target["expr"].replace("$__rate_interval", "1m").replace("$namespace", "default")
                        .replace("$pod", "burner").replace("$node", node))
                prom.series(expr, lambda v: len(v) > 0, what=f"{path.name}: panel {panel['title']!r}")
    with _OPENER.open(f"http://{prom.address}/consoles/skiff-overview.html", timeout=10) as r:
        page = r.read().decode()
    assert f'<td class="node">{node}</td>' in page
    assert '<td class="pod">burner</td>' in page and '<td class="phase">Running</td>' in page
    assert "<td>Ready</td>" in page and "error executing template" not in page

    # A pod annotated for scraping, made after Prometheus started, is found and scraped.
    port = free_port()
    scraped = tmp_path / "scraped.yaml"
    scraped.write_text(SCRAPED % {"port": port})
    applied = c.skiff("apply", "-f", str(scraped))
    assert applied.returncode == 0, applied.stderr
    found = prom.eventually(
        "the annotated pod scraped", targets,
        lambda ts: any(t["labels"]["job"] == "kubernetes-pods" and t["health"] == "up" for t in ts))
    pod_target = next(t for t in found if t["labels"]["job"] == "kubernetes-pods")
    assert pod_target["scrapeUrl"] == f"http://127.0.0.1:{port}/custom"
    assert (pod_target["labels"]["namespace"], pod_target["labels"]["pod"], pod_target["labels"]["node"],
            pod_target["labels"]["container"]) == ("default", "exporter", node, "web")
    assert pod_target["discoveredLabels"]["__meta_kubernetes_pod_container_port_name"] == "metrics"
    prom.series('skiff_test_exporter_up{pod="exporter"}', lambda v: len(v) == 1, what="the pod's own metric")

    # skiff top: the same containers, as kubectl top prints them.
    top = c.skiff("top", "pods", "--containers")
    assert top.returncode == 0, top.stderr
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in top.stdout.splitlines()[1:]}
    assert top.stdout.split("\n")[0].split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    cpu, memory = rows[("burner", "main")]
    assert cpu.endswith("m") and int(cpu[:-1]) > 0
    cpu, memory = rows[("hungry", "main")]
    assert memory.endswith("Mi") and int(memory[:-2]) >= 45   # 48 MB held
    nodes = c.skiff("top", "nodes")
    assert nodes.returncode == 0, nodes.stderr
    header, row = nodes.stdout.splitlines()
    assert header.split() == ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
    name, cpu, cpu_pct, memory, memory_pct = row.split()
    assert name == node and cpu.endswith("m") and cpu_pct.endswith("%") and memory.endswith("Mi")

    # down --purge stops Prometheus with the cluster and removes its data.
    prom_pid = c.pids()["prometheus"]
    down = c.skiff("down", "--data-dir", str(c.data_dir), "--run-dir", str(c.run_dir), "--purge",
                   "--grace-period", "1", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopping prometheus" in down.stdout
    assert not alive(prom_pid)
    assert not (c.data_dir / "monitoring").exists()
