"""`skiff up --monitoring`: Debian's prometheus as one more supervised
component of the all-in-one cluster.

It runs on loopback (127.0.0.1:--prometheus-port, default 9090) with
Skiff's configuration: deploy/monitoring/prometheus.yml, whose every target
comes from the control plane's http_sd lists, pointed at this cluster's
control plane, and deploy/monitoring/rules (recording rules and alerts).
Both are copied into DATA/monitoring/ at `up` (the TSDB lives in
DATA/monitoring/data), with deploy/monitoring/consoles, which Prometheus
serves at /consoles/skiff-*.html (console templates: dashboards for a user
with nothing but Prometheus; their charts come from console_libraries/skiff.lib,
Prometheus' own console JavaScript; deploy/monitoring/dashboards holds the same
views for Grafana). The supervisor restarts it with the same files and
`down --purge` removes it all with DATA. `down` stops it first (it is
the last component). On a secure cluster (the default) etcd answers only
certificates of the cluster CA, so its job scrapes over TLS with a client
certificate of Prometheus' own (DATA/pki/prometheus.crt, CN
system:skiff-prometheus, no group: the API grants it nothing); the control
plane's and the agents' /metrics stay plain HTTP on loopback (decision 34).
"""
from __future__ import annotations

import json
import re
import shutil
import urllib.request
from pathlib import Path

from skiff.cli._cluster import ROOT, ClusterConfig, Component

SOURCE = ROOT / "deploy" / "monitoring"
DEFAULT_CONTROLPLANE = "127.0.0.1:10257"   # the address deploy/monitoring/prometheus.yml is written for


def monitoring_dir(config: ClusterConfig) -> Path:
    return config.data_dir / "monitoring"


def prometheus_address(config: ClusterConfig) -> str:
    return f"127.0.0.1:{config.prometheus_port}"


def prometheus_component(config: ClusterConfig) -> Component:
    d = monitoring_dir(config)
    argv = (config.prometheus_binary, f"--config.file={d / 'prometheus.yml'}",
            f"--storage.tsdb.path={d / 'data'}", f"--web.listen-address={prometheus_address(config)}",
            f"--web.console.templates={d / 'consoles'}", f"--web.console.libraries={d / 'console_libraries'}",
            "--storage.tsdb.retention.time=15d")
    return Component("prometheus", argv, marker=str(d / "prometheus.yml"), address=prometheus_address(config))


def render_config(config: ClusterConfig, *, source: Path = SOURCE) -> dict:
    """deploy/monitoring/prometheus.yml for this cluster: its control plane's
    http_sd lists, the rules copied beside it."""
    import yaml

    prom = yaml.safe_load((source / "prometheus.yml").read_text())
    address = f"127.0.0.1:{config.controlplane_metrics_port}"
    for job in prom.get("scrape_configs", []):
        for sd in job.get("http_sd_configs", []):
            sd["url"] = sd["url"].replace(DEFAULT_CONTROLPLANE, address)
    prom["rule_files"] = [str(monitoring_dir(config) / "rules" / "*.yml")]
    if config.secure:   # etcd serves TLS and answers only certificates of its own CA: Prometheus gets one
        pki = config.pki
        for job in prom.get("scrape_configs", []):
            if job.get("job_name") == "etcd":
                job["scheme"] = "https"
                job["tls_config"] = {"ca_file": str(pki.etcd_ca_file),
                                     "cert_file": str(pki.cert_file(pki.PROMETHEUS_ETCD_CLIENT)),
                                     "key_file": str(pki.key_file(pki.PROMETHEUS_ETCD_CLIENT))}
    return prom


_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
            "y": 31_536_000_000}


def duration_ms(text: str) -> int:
    """A Prometheus duration ("15m", "1h30m", "500ms") in milliseconds."""
    text = str(text).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNIT_MS[u] for n, u in parts)


def scale_rule_for(path: Path, factor: float) -> None:
    """Rewrite a rule file with every alert's `for:` multiplied by factor
    (`up --monitoring-rule-for-scale`), in whole milliseconds; expressions,
    their range windows and recording rules are left as shipped."""
    import yaml

    doc = yaml.safe_load(path.read_text())
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            if "alert" in rule and "for" in rule:
                rule["for"] = f"{round(duration_ms(rule['for']) * factor)}ms"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.replace(path)


def write_config(config: ClusterConfig, *, source: Path = SOURCE) -> Path:
    """Write DATA/monitoring/prometheus.yml (JSON, which is YAML) and the rules; returns the config's path."""
    d = monitoring_dir(config)
    (d / "data").mkdir(parents=True, exist_ok=True)
    for name in ("rules", "consoles", "console_libraries"):
        if (d / name).exists():
            shutil.rmtree(d / name)
        shutil.copytree(source / name, d / name)
    if config.monitoring_rule_for_scale != 1:
        for rules in sorted((d / "rules").glob("*.yml")):
            scale_rule_for(rules, config.monitoring_rule_for_scale)
    path = d / "prometheus.yml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(render_config(config, source=source), indent=2) + "\n")
    tmp.replace(path)
    return path


def prometheus_ready(config: ClusterConfig) -> bool:
    try:
        # No proxy: an http_proxy in the environment must not intercept loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{prometheus_address(config)}/-/ready", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False
