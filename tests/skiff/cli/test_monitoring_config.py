"""`skiff up --monitoring`'s Prometheus: its config points at this cluster's
control plane (no other target), the rules sit beside it, promtool accepts
it, and it is a supervised component with a health check of its own."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from skiff.cli._cluster import ClusterConfig, components
from skiff.cli._monitoring import prometheus_component, write_config


def _config(tmp_path: Path, **kw) -> ClusterConfig:
    return ClusterConfig(data_dir=tmp_path, run_dir=tmp_path / "run", node_name="n1",
                         controlplane_metrics_port=41257, **kw)


@pytest.mark.parametrize("secure", [True, False], ids=["secure", "insecure"])
def test_the_config_reads_only_this_cluster_s_sd_lists(tmp_path, secure):
    config = _config(tmp_path, monitoring=True, prometheus_port=49090, secure=secure)
    if secure:   # as `up` makes them before Prometheus starts
        config.pki.ensure_etcd_client(config.pki.PROMETHEUS_ETCD_CLIENT, user="system:skiff-prometheus")
    path = write_config(config)
    prom = json.loads(path.read_text())
    etcd = next(job for job in prom["scrape_configs"] if job["job_name"] == "etcd")
    # A secure etcd answers only certificates of its own CA: Prometheus scrapes it with its own.
    assert (etcd.get("scheme"), etcd.get("tls_config")) == (("https", {
        "ca_file": str(tmp_path / "pki" / "etcd" / "ca.crt"),
        "cert_file": str(tmp_path / "pki" / "prometheus-etcd-client.crt"),
        "key_file": str(tmp_path / "pki" / "prometheus-etcd-client.key")}) if secure else (None, None))
    urls = [sd["url"] for job in prom["scrape_configs"] for sd in job["http_sd_configs"]]
    assert urls and all(u.startswith("http://127.0.0.1:41257/sd/") for u in urls)
    assert not any("static_configs" in job for job in prom["scrape_configs"])
    assert {job["job_name"] for job in prom["scrape_configs"]} == {
        "apiserver", "kube-state-metrics", "etcd", "kubelet", "kubernetes-pods"}
    assert sorted(p.name for p in (tmp_path / "monitoring" / "rules").iterdir()) == [
        "skiff-alerts.yml", "skiff-recording.yml"]
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    checked = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 rule files found" in checked.stdout


def test_prometheus_is_a_component_only_with_monitoring(tmp_path):
    assert "prometheus" not in [c.name for c in components(_config(tmp_path))]
    config = _config(tmp_path, monitoring=True, prometheus_port=49090)
    names = [c.name for c in components(config)]
    assert names[-1] == "prometheus"     # started last, stopped first
    component = prometheus_component(config)
    assert "--web.listen-address=127.0.0.1:49090" in component.argv
    assert f"--storage.tsdb.path={tmp_path / 'monitoring' / 'data'}" in component.argv
    assert component.address == "127.0.0.1:49090"


def test_up_eviction_hard_reaches_every_agent(tmp_path):
    """`skiff up --eviction-hard` (issue 10): each agent gets kubelet's flag; without it, the agent's default."""
    from skiff.cli._cluster import node_agent
    assert "--eviction-hard" not in components(_config(tmp_path))[-1].argv
    config = _config(tmp_path, eviction_hard="memory.available<1Gi")
    agent = components(config)[-1]
    assert agent.is_agent
    assert agent.argv[agent.argv.index("--eviction-hard") + 1] == "memory.available<1Gi"
    lab = _config(tmp_path, eviction_hard="nodefs.available<20%", nodes=(1, 2))
    argv = node_agent(lab, lab.lab.node(2)).argv
    assert argv[argv.index("--eviction-hard") + 1] == "nodefs.available<20%"


def test_rule_for_scale_shortens_only_the_copied_alerts_for(tmp_path):
    """`up --monitoring-rule-for-scale 0.02`: a 15m alert waits 18s in the rules
    Prometheus loads; the shipped file and the expressions are unchanged."""
    import yaml
    from skiff.cli._monitoring import SOURCE, duration_ms
    write_config(_config(tmp_path, monitoring=True, monitoring_rule_for_scale=0.02))
    copied = yaml.safe_load((tmp_path / "monitoring" / "rules" / "skiff-alerts.yml").read_text())
    shipped = yaml.safe_load((SOURCE / "rules" / "skiff-alerts.yml").read_text())
    rules = {r["alert"]: r for g in copied["groups"] for r in g["rules"]}
    originals = {r["alert"]: r for g in shipped["groups"] for r in g["rules"]}
    assert originals["KubePodCrashLooping"]["for"] == "15m"
    assert rules["KubePodCrashLooping"]["for"] == "18000ms"
    assert rules["EtcdNoLeader"]["for"] == "1200ms"
    assert {a: r["expr"] for a, r in rules.items()} == {a: r["expr"] for a, r in originals.items()}
    assert duration_ms("1h30m") == 5_400_000 and duration_ms("500ms") == 500
    with pytest.raises(ValueError, match="15 minutes"):
        duration_ms("15 minutes")
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    checked = subprocess.run([promtool, "check", "rules", str(tmp_path / "monitoring" / "rules" / "skiff-alerts.yml")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_up_refuses_a_rule_for_scale_out_of_range(tmp_path):
    import subprocess as sp
    import sys
    out = sp.run([sys.executable, "-m", "skiff.cli.main", "up", "--data-dir", str(tmp_path), "--monitoring",
                  "--monitoring-rule-for-scale", "0"], capture_output=True, text=True)
    assert out.returncode != 0
    assert "--monitoring-rule-for-scale: must be > 0 and <= 1, got 0.0" in out.stderr
