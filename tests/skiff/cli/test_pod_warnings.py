"""Server warnings through the CLI, as kubectl prints them: a Pod field of
Kubernetes' schema that Skiff does not implement is stored, and `apply` says
so on stderr; a misspelt field is still refused."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.etcd

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: resize
spec:
  containers:
  - name: main
    image: busybox
    resizePolicy:
    - resourceName: cpu
      restartPolicy: NotRequired
    livenessProbe:
      tcpSocket: {port: 8080}
"""


def test_apply_prints_the_servers_warning_and_stores_the_field(skiff, controlplane, tmp_path):
    (tmp_path / "pod.yaml").write_text(POD)
    result = skiff("apply", "-f", "pod.yaml", server=controlplane)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["pod/resize created"]
    assert result.stderr.splitlines() == [
        "Warning: spec.containers[0].resizePolicy is not implemented by Skiff and is ignored"]
    got = json.loads(skiff("get", "pod", "resize", "-o", "json", server=controlplane).stdout)
    assert got["spec"]["containers"][0]["resizePolicy"] == [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]
    assert got["spec"]["containers"][0]["livenessProbe"]["periodSeconds"] == 10


def test_a_misspelt_field_is_refused(skiff, controlplane, tmp_path):
    (tmp_path / "pod.yaml").write_text(POD.replace("resizePolicy", "resisePolicy").replace("resize\n", "typo\n"))
    result = skiff("apply", "-f", "pod.yaml", server=controlplane)
    assert result.returncode == 1
    assert "unknown field 'resisePolicy' in Container; did you mean 'resizePolicy'?" in result.stderr
