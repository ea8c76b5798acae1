"""`skiff autoscale` against a real control plane: the HPA it makes, and how
`skiff get hpa` prints it (kubectl's columns)."""
import json
import os
import subprocess
import sys
import time

import pytest

from tests.skiff.cli.conftest import ROOT, Result

pytestmark = pytest.mark.etcd

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: burn
        image: busybox
        resources: {requests: {cpu: 100m}}
"""


@pytest.fixture
def sk(tmp_path):
    env = dict(os.environ, SKIFF_CONFIG=str(tmp_path / "skiff-config"),
               PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    env.pop("SKIFF_SERVER", None)

    def run(*args: str, server: str) -> Result:
        proc = subprocess.run([sys.executable, "-m", "skiff.cli.main", "--server", server, *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)
        return Result(proc.returncode, proc.stdout, proc.stderr)
    return run


def test_autoscale_makes_an_hpa_printed_as_kubectl(sk, controlplane, tmp_path):
    server = controlplane
    (tmp_path / "web.yaml").write_text(DEPLOYMENT)
    assert sk("apply", "-f", str(tmp_path / "web.yaml"), server=server).returncode == 0
    made = sk("autoscale", "deploy/web", "--min", "2", "--max", "5", "--cpu-percent", "50", server=server)
    assert made.returncode == 0, made.stderr
    assert made.stdout == "horizontalpodautoscaler.autoscaling/web autoscaled\n"
    table = sk("get", "hpa", server=server)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert row.split()[:6] == ["web", "Deployment/web", "cpu:", "<unknown>/50%", "2", "5"]
    assert row.split()[6].isdigit()
    hpa = json.loads(sk("get", "hpa", "web", "-o", "json", server=server).stdout)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    # below --min: the controller raises the deployment to 2 before reading any metric, as Kubernetes
    deadline = time.monotonic() + 30
    while json.loads(sk("get", "deploy", "web", "-o", "json", server=server).stdout)["spec"]["replicas"] != 2:
        assert time.monotonic() < deadline, "the deployment was never raised to --min"
        time.sleep(0.2)
    described = sk("describe", "hpa", "web", server=server).stdout
    assert "New size: 2; reason: Current number of replicas below Spec.MinReplicas" in described, described
    assert ["ScalingLimited", "True", "TooFewReplicas"] in [line.split()[:3] for line in described.splitlines()]
    again = sk("autoscale", "deploy/web", "--max", "5", server=server)
    assert again.returncode == 1 and "AlreadyExists" in again.stderr
    missing = sk("autoscale", "deploy/nope", "--max", "5", server=server)
    assert missing.returncode == 1 and "not found" in missing.stderr
