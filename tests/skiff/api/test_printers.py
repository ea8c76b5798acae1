"""Printers: kubectl's STATUS column for each pod state, ages, tables, and the
Kubernetes-style JSON that scripts read."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from proto.skiff.v1 import types_pb2
from skiff.api import kinds, printers

NOW = datetime(2026, 1, 2, 12, 0, 0, tzinfo=timezone.utc)


def pod(name: str = "p", *, phase: str = "Pending", states: list[dict] | None = None,
        deleting: bool = False, age_s: int = 30) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = name
    p.metadata.namespace = "default"
    p.metadata.generation = 3
    p.metadata.creation_timestamp.FromDatetime(NOW - timedelta(seconds=age_s))
    if deleting:
        p.metadata.deletion_timestamp.FromDatetime(NOW)
    p.status.phase = phase
    for i, state in enumerate(states or []):
        p.spec.containers.add(name=f"c{i}", image="busybox")
        cs = p.status.container_statuses.add(name=f"c{i}", restart_count=state.pop("restarts", 0),
                                             ready=state.pop("ready", False))
        for which, fields in state.items():
            getattr(cs.state, which).SetInParent()
            for k, v in fields.items():
                setattr(getattr(cs.state, which), k, v)
    if not states:
        p.spec.containers.add(name="c0", image="busybox")
    return p


@pytest.mark.parametrize("p, status", [
    (pod(), "Pending"),
    (pod(states=[{"waiting": {"reason": "ContainerCreating"}}]), "ContainerCreating"),
    (pod(phase="Running", states=[{"running": {}, "ready": True}]), "Running"),
    (pod(phase="Succeeded", states=[{"terminated": {"reason": "Completed"}}]), "Completed"),
    (pod(phase="Failed", states=[{"terminated": {"reason": "Error", "exit_code": 3}}]), "Error"),
    (pod(phase="Failed", states=[{"terminated": {"exit_code": 3}}]), "ExitCode:3"),
    (pod(phase="Running", states=[{"waiting": {"reason": "CrashLoopBackOff"}, "restarts": 4}]), "CrashLoopBackOff"),
    (pod(phase="Failed", states=[{"terminated": {"reason": "OOMKilled", "exit_code": 137}}]), "OOMKilled"),
    (pod(phase="Running", states=[{"running": {}, "ready": True}], deleting=True), "Terminating"),
    (pod(phase="Running", states=[{"terminated": {"reason": "Completed"}}, {"running": {}, "ready": True}]),
     "Running"),
])
def test_pod_status_column(p, status):
    assert printers.pod_status(p) == status


@pytest.mark.parametrize("seconds, text", [
    (5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600 + 60, "3h1m"), (30 * 3600, "30h"),
    (3 * 86400 + 3600, "3d1h"), (40 * 86400, "40d"), (3 * 365 * 86400 + 86400, "3y1d"), (-5, "<invalid>"),
])
def test_human_duration(seconds, text):
    assert printers.human_duration(seconds) == text


def test_pod_table_like_kubectl():
    pods = [pod("web", phase="Running", states=[{"running": {}, "ready": True, "restarts": 2}]),
            pod("batch-job-1", phase="Succeeded", states=[{"terminated": {"reason": "Completed"}}], age_s=150)]
    text = printers.table(pods, kind=kinds.kind_named("Pod"), now=NOW)
    assert text.splitlines() == [
        "NAME          READY   STATUS      RESTARTS   AGE",
        "web           1/1     Running     2          30s",
        "batch-job-1   0/1     Completed   0          2m30s",
    ]
    wide = printers.table(pods, kind=kinds.kind_named("Pod"), now=NOW, wide=True, with_namespace=True)
    assert wide.splitlines()[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]


def test_node_table():
    n = types_pb2.Node()
    n.metadata.name = "node-1"
    n.metadata.labels["node-role.kubernetes.io/control-plane"] = ""
    n.metadata.creation_timestamp.FromDatetime(NOW - timedelta(hours=2))
    n.status.conditions.add(type="Ready", status="True")
    n.status.node_info.kubelet_version = "v0.1.0"
    n.spec.unschedulable = True
    assert printers.table([n], kind=kinds.kind_named("Node"), now=NOW).splitlines()[1].split() == \
        ["node-1", "Ready,SchedulingDisabled", "control-plane", "120m", "v0.1.0"]


def test_json_is_kubernetes_shaped():
    p = pod("done", phase="Succeeded", states=[{"terminated": {"reason": "Completed", "exit_code": 0}}])
    data = json.loads(printers.dump_json(printers.to_list_dict([p], resource_version="7")))
    assert data["apiVersion"] == "v1" and data["kind"] == "List"
    [item] = data["items"]
    assert item["apiVersion"] == "v1" and item["kind"] == "Pod"
    assert item["metadata"]["name"] == "done"
    assert item["metadata"]["generation"] == 3  # a number, not protobuf's "3"
    assert item["status"]["phase"] == "Succeeded"
    status = item["status"]["containerStatuses"][0]
    # Zero values that mean something are printed, as Kubernetes does.
    assert status["state"]["terminated"] == {"reason": "Completed", "exitCode": 0}
    assert status["restartCount"] == 0 and status["ready"] is False
    running = printers.to_dict(pod(phase="Running", states=[{"running": {}, "ready": True}]))
    assert running["status"]["containerStatuses"][0]["state"] == {"running": {}}


def test_name_output():
    assert printers.name_of(pod("hello")) == "pod/hello"
