"""The http_sd lists: what a pod's prometheus.io annotations make of it, the
agents' two paths per node, and a bad annotation skipped with one warning."""
from __future__ import annotations

import json

from controlplane.discovery import METRICS_ADDRESS_ANNOTATION, Discovery, node_targets, pod_targets
from proto.skiff.v1 import types_pb2


def _pod(name: str = "web", annotations: dict | None = None, ports: tuple = (("http", 8080),)) -> types_pb2.Pod:
    pod = types_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = name, "shop", f"uid-{name}"
    pod.metadata.labels["app"] = "web"
    pod.metadata.annotations.update(annotations if annotations is not None else {"prometheus.io/scrape": "true"})
    c = pod.spec.containers.add(name="main", image="busybox")
    for port_name, number in ports:
        c.ports.add(name=port_name, container_port=number)
    pod.spec.node_name = "n1"
    pod.status.phase, pod.status.pod_ip, pod.status.host_ip = "Running", "10.244.0.7", "10.0.0.1"
    pod.status.conditions.add(type="Ready", status="True")
    return pod


class _Cache:
    def __init__(self, *objs):
        self.objs = list(objs)

    def list(self):
        return list(self.objs)


def test_annotated_pod_is_a_target_per_declared_port_with_kubernetes_meta_labels():
    groups, problem = pod_targets(_pod(ports=(("http", 8080), ("admin", 9090))))
    assert problem is None
    assert [g["targets"] for g in groups] == [["10.244.0.7:8080"], ["10.244.0.7:9090"]]
    labels = groups[0]["labels"]
    assert labels["__meta_kubernetes_namespace"] == "shop"
    assert labels["__meta_kubernetes_pod_name"] == "web"
    assert labels["__meta_kubernetes_pod_node_name"] == "n1"
    assert labels["__meta_kubernetes_pod_container_name"] == "main"
    assert labels["__meta_kubernetes_pod_container_port_name"] == "http"
    assert labels["__meta_kubernetes_pod_label_app"] == "web"
    assert labels["__meta_kubernetes_pod_ready"] == "true"
    assert (labels["__metrics_path__"], labels["__scheme__"]) == ("/metrics", "http")


def test_port_path_and_scheme_annotations_are_honoured():
    groups, problem = pod_targets(_pod(annotations={
        "prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/stats",
        "prometheus.io/scheme": "https"}))
    assert problem is None and len(groups) == 1
    assert groups[0]["targets"] == ["10.244.0.7:9090"]
    assert groups[0]["labels"]["__metrics_path__"] == "/stats"
    assert groups[0]["labels"]["__scheme__"] == "https"
    assert groups[0]["labels"]["__meta_kubernetes_pod_annotation_prometheus_io_port"] == "9090"


def test_unannotated_or_not_running_pods_are_not_targets():
    assert pod_targets(_pod(annotations={})) == ([], None)
    pending = _pod()
    pending.status.phase, pending.status.pod_ip = "Pending", ""
    assert pod_targets(pending) == ([], None)


def test_bad_annotations_are_skipped_with_one_warning_each():
    bad_port = _pod("a", {"prometheus.io/scrape": "true", "prometheus.io/port": "http"})
    bad_path = _pod("b", {"prometheus.io/scrape": "true", "prometheus.io/path": "metrics"})
    no_port = _pod("c", ports=())
    good = _pod("d")
    warned = []
    sd = Discovery(nodes=_Cache(), pods=_Cache(bad_port, bad_path, no_port, good), metrics_address="127.0.0.1:1",
                   etcd_address="127.0.0.1:2379", warn=lambda pod, msg: warned.append((pod.metadata.name, msg)))
    for _ in range(3):   # every refresh; the warnings only once
        _ctype, body = sd.routes()["/sd/pods"]()
        groups = json.loads(body)
        assert [g["labels"]["__meta_kubernetes_pod_name"] for g in groups] == ["d"]
    assert [name for name, _ in warned] == ["a", "b", "c"]
    assert "prometheus.io/port='http'" in warned[0][1] and "1-65535" in warned[0][1]


def test_each_node_agent_at_both_paths():
    node = types_pb2.Node()
    node.metadata.name = "n1"
    node.metadata.labels["kubernetes.io/os"] = "linux"
    node.metadata.annotations[METRICS_ADDRESS_ANNOTATION] = "0.0.0.0:10255"
    node.status.addresses.add(type="InternalIP", address="10.0.0.1")
    groups = node_targets(node)
    assert [(g["targets"], g["labels"]["__metrics_path__"]) for g in groups] == [
        (["10.0.0.1:10255"], "/metrics"), (["10.0.0.1:10255"], "/metrics/cadvisor")]
    assert groups[0]["labels"]["__meta_kubernetes_node_label_kubernetes_io_os"] == "linux"
    silent = types_pb2.Node()
    silent.metadata.name = "old-agent"
    assert node_targets(silent) == []
