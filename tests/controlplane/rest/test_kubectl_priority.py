"""kubectl and priority classes: what a user types and sees (REST front door, real etcd)."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

CLASS = """\
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
description: urgent work
"""
POD = """\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  priorityClassName: %s
  containers: [{name: c, image: busybox}]
"""


def test_kubectl_priority_classes_and_an_unknown_class(rest, tmp_path):
    manifest = tmp_path / "pc.yaml"
    manifest.write_text(CLASS)
    applied = rest.kubectl("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "priorityclass.scheduling.k8s.io/high created"
    table = rest.kubectl("get", "pc").stdout.splitlines()
    assert table[0].split() == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["high"][1:3] == ["1000", "false"] and rows["high"][-1] == "PreemptLowerPriority"
    assert rows["system-node-critical"][1] == "2000001000"

    bad = tmp_path / "bad.yaml"
    bad.write_text(POD % "nope")
    refused = rest.kubectl("apply", "-f", str(bad))
    assert refused.returncode == 1
    assert refused.stderr.strip() == (f'Error from server (Forbidden): error when creating "{bad}": '
                                      f'pods "p" is forbidden: no PriorityClass with name nope was found')
    good = tmp_path / "good.yaml"
    good.write_text(POD % "high")
    assert rest.kubectl("apply", "-f", str(good)).returncode == 0
    assert rest.kubectl("get", "pod", "p", "-o", "jsonpath={.spec.priority}").stdout == "1000"
