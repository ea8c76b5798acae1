"""kubectl's own rollout commands against Skiff's workload controllers through
the REST front door: they read the conditions and revision annotations the
controllers write, so they must come out as on Kubernetes. No agent runs; the
test marks pods Ready through the API as a kubelet would."""
from __future__ import annotations

import pytest

from tests.fake_kubelet import kubelet

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: busybox, command: [sleep, "1000"]}]
"""


def test_kubectl_rollout_status_history_undo(rest, tmp_path):
    (tmp_path / "d.yaml").write_text(DEPLOYMENT)
    r = rest.kubectl("apply", "-f", str(tmp_path / "d.yaml"))
    assert r.returncode == 0, r.stderr
    with kubelet(rest.info.client):
        r = rest.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[-1] == 'deployment "web" successfully rolled out'
        r = rest.kubectl("set", "image", "deployment/web", "c=busybox:2")
        assert r.returncode == 0, r.stderr
        r = rest.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
        assert r.returncode == 0, r.stderr
        r = rest.kubectl("rollout", "history", "deployment/web")
        assert r.returncode == 0, r.stderr
        assert [line.split()[0] for line in r.stdout.splitlines()[2:] if line.strip()] == ["1", "2"]
        r = rest.kubectl("rollout", "undo", "deployment/web")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "deployment.apps/web rolled back"
        r = rest.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
        assert r.returncode == 0, r.stderr
        r = rest.kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
        assert r.stdout == "busybox"
        r = rest.kubectl("scale", "deployment/web", "--replicas=3")
        assert r.returncode == 0, r.stderr
        r = rest.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
        assert r.returncode == 0, r.stderr
        r = rest.kubectl("get", "deployment", "web")
        assert r.stdout.splitlines()[1].split()[:4] == ["web", "3/3", "3", "3"], r.stdout
