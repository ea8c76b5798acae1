"""Prometheus http_sd target lists, served by the control plane.

Prometheus' `http_sd_configs` reads a JSON list of target groups
(`[{"targets": ["host:port"], "labels": {...}}]`) and reads it again every
`refresh_interval`. The control plane knows every part of the cluster, so it
writes those lists and no target is written by hand (deploy/monitoring/
prometheus.yml has one job per list):

    /sd/controlplane          this control plane's /metrics
    /sd/kube-state-metrics    its /metrics/kube-state-metrics (controlplane/kubestate.py)
    /sd/etcd                  etcd's /metrics (on its client address)
    /sd/kubelet               every node's agent, twice: /metrics and /metrics/cadvisor
                              (`__metrics_path__`; kubelet's paths, so mixins that select
                              metrics_path="/metrics/cadvisor" work)
    /sd/pods                  every running pod annotated prometheus.io/scrape: "true"

Labels are what Prometheus' Kubernetes discovery gives a relabel config
(`__meta_kubernetes_namespace`, `__meta_kubernetes_pod_name`,
`__meta_kubernetes_pod_node_name`, `__meta_kubernetes_pod_container_port_name`,
`__meta_kubernetes_node_name`, `__meta_kubernetes_node_label_<name>`, ...),
so relabel rules written for `kubernetes_sd_configs` carry over. The pod
annotations are applied here already: `prometheus.io/port` picks the port
(else each declared TCP container port is a target), `prometheus.io/path` sets
`__metrics_path__`, `prometheus.io/scheme` sets `__scheme__`.

A pod whose annotations cannot make a target (a port that is not a number
in 1..65535, a path not starting with "/", a scheme other than http/https,
no port at all) is left out of the list and gets one Warning event
(`FailedDiscovery`), not a broken list.

Everything is read from the informer caches (nodes, pods) on the HTTP
thread; nothing here reads etcd or takes a lock the API path takes. An
agent's metrics address is the Node annotation `skiff.io/metrics-address`
the agent writes at registration (an unspecified host such as 0.0.0.0 means
the node's InternalIP).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Iterator

from google.protobuf.message import Message

METRICS_ADDRESS_ANNOTATION = "skiff.io/metrics-address"
SCRAPE, PORT, PATH, SCHEME = ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path",
                              "prometheus.io/scheme")
CONTENT_TYPE = "application/json"
_UNSPECIFIED = ("0.0.0.0", "::", "[::]", "")


def _label_name(text: str) -> str:
    """Prometheus' sanitising of a Kubernetes label or annotation name."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", text)


@dataclass(frozen=True)
class Problem:
    """Why a pod annotated for scraping is not a target (one Warning event each)."""
    pod: Message
    message: str


def pod_targets(pod: Message) -> tuple[list[dict], str | None]:
    """The target groups of one pod, or the reason it has none. A pod that
    is not annotated for scraping, or not running yet, has none and no problem."""
    m, spec, status = pod.metadata, pod.spec, pod.status
    if m.annotations.get(SCRAPE, "").lower() != "true":
        return [], None
    if status.phase != "Running" or not status.pod_ip or m.HasField("deletion_timestamp"):
        return [], None
    path = m.annotations.get(PATH, "/metrics")
    scheme = m.annotations.get(SCHEME, "http")
    if not path.startswith("/") or any(c.isspace() for c in path):
        return [], f"annotation {PATH}={path!r}: must be a path starting with /"
    if scheme not in ("http", "https"):
        return [], f"annotation {SCHEME}={scheme!r}: must be http or https"
    declared = [(c, p) for c in spec.containers for p in c.ports if (p.protocol or "TCP") == "TCP"]
    wanted = m.annotations.get(PORT)
    if wanted is not None:
        if not wanted.isdigit() or not 1 <= int(wanted) <= 65535:
            return [], f"annotation {PORT}={wanted!r}: must be a port number 1-65535"
        match = next(((c, p) for c, p in declared if p.container_port == int(wanted)), None)
        ports = [(match[0].name if match else "", match[1].name if match else "", int(wanted))]
    else:
        ports = [(c.name, p.name, p.container_port) for c, p in declared]
        if not ports:
            return [], f"annotated {SCRAPE}=true but declares no TCP port and has no {PORT} annotation"
    base = {
        "__meta_kubernetes_namespace": m.namespace,
        "__meta_kubernetes_pod_name": m.name,
        "__meta_kubernetes_pod_uid": m.uid,
        "__meta_kubernetes_pod_ip": status.pod_ip,
        "__meta_kubernetes_pod_node_name": spec.node_name,
        "__meta_kubernetes_pod_host_ip": status.host_ip,
        "__meta_kubernetes_pod_phase": status.phase,
        "__meta_kubernetes_pod_ready": next((c.status.lower() for c in status.conditions if c.type == "Ready"),
                                            "unknown"),
        "__metrics_path__": path,
        "__scheme__": scheme,
    }
    for key, value in m.labels.items():
        base[f"__meta_kubernetes_pod_label_{_label_name(key)}"] = value
        base[f"__meta_kubernetes_pod_labelpresent_{_label_name(key)}"] = "true"
    for key, value in m.annotations.items():
        if key.startswith("prometheus.io/"):
            base[f"__meta_kubernetes_pod_annotation_{_label_name(key)}"] = value
    for ref in m.owner_references:
        if ref.controller:
            base["__meta_kubernetes_pod_controller_kind"] = ref.kind
            base["__meta_kubernetes_pod_controller_name"] = ref.name
    host = f"[{status.pod_ip}]" if ":" in status.pod_ip else status.pod_ip
    groups = []
    for container, port_name, number in ports:
        labels = dict(base, __meta_kubernetes_pod_container_name=container,
                      __meta_kubernetes_pod_container_port_name=port_name,
                      __meta_kubernetes_pod_container_port_number=str(number),
                      __meta_kubernetes_pod_container_port_protocol="TCP")
        groups.append({"targets": [f"{host}:{number}"], "labels": labels})
    return groups, None


def node_targets(node: Message) -> list[dict]:
    """The agent of `node`, at /metrics and /metrics/cadvisor; none if it has not said where."""
    address = node.metadata.annotations.get(METRICS_ADDRESS_ANNOTATION, "")
    if not address:
        return []
    host, _, port = address.rpartition(":")
    internal = next((a.address for a in node.status.addresses if a.type == "InternalIP"), "")
    if host in _UNSPECIFIED:
        if not internal:
            return []
        host = f"[{internal}]" if ":" in internal else internal
    labels = {"__meta_kubernetes_node_name": node.metadata.name,
              "__meta_kubernetes_node_address_InternalIP": internal}
    for key, value in node.metadata.labels.items():
        labels[f"__meta_kubernetes_node_label_{_label_name(key)}"] = value
    return [{"targets": [f"{host}:{port}"], "labels": dict(labels, __metrics_path__=path)}
            for path in ("/metrics", "/metrics/cadvisor")]


class Discovery:
    """The lists, from `nodes` and `pods` (objects with `.list()`: informers)
    and this control plane's own addresses. `warn(pod, message)` is called
    once per pod and problem, from the HTTP thread (the caller hands it to
    its event loop)."""

    def __init__(self, *, nodes, pods, metrics_address: str, etcd_address: str,
                 warn: Callable[[Message, str], None] | None = None) -> None:
        self.nodes, self.pods = nodes, pods
        self.metrics_address = metrics_address
        self.etcd_address = etcd_address.removeprefix("http://")
        self.warn = warn
        self._warned: set[tuple[str, str]] = set()

    def routes(self) -> dict[str, Callable[[], tuple[str, bytes]]]:
        def route(groups: Callable[[], list[dict]]) -> Callable[[], tuple[str, bytes]]:
            return lambda: (CONTENT_TYPE, json.dumps(groups(), indent=1).encode() + b"\n")
        return {"/sd/controlplane": route(self.controlplane), "/sd/kube-state-metrics": route(self.kube_state),
                "/sd/etcd": route(self.etcd), "/sd/kubelet": route(self.kubelet), "/sd/pods": route(self.pod_list)}

    def controlplane(self) -> list[dict]:
        return [{"targets": [self.metrics_address], "labels": {"__meta_skiff_component": "controlplane"}}]

    def kube_state(self) -> list[dict]:
        return [{"targets": [self.metrics_address], "labels": {"__metrics_path__": "/metrics/kube-state-metrics",
                                                               "__meta_skiff_component": "controlplane"}}]

    def etcd(self) -> list[dict]:
        return [{"targets": [self.etcd_address], "labels": {"__meta_skiff_component": "etcd"}}]

    def kubelet(self) -> list[dict]:
        return [g for node in sorted(self.nodes.list(), key=lambda n: n.metadata.name) for g in node_targets(node)]

    def pod_list(self) -> list[dict]:
        return list(self._pods())

    def _pods(self) -> Iterator[dict]:
        pods = sorted(self.pods.list(), key=lambda p: (p.metadata.namespace, p.metadata.name))
        # Forget the warnings of pods that are gone (the set would grow with every pod ever seen).
        uids = {p.metadata.uid for p in pods}
        self._warned = {key for key in self._warned if key[0] in uids}
        for pod in pods:
            groups, problem = pod_targets(pod)
            if problem is not None:
                key = (pod.metadata.uid, problem)
                if key not in self._warned and self.warn is not None:
                    self._warned.add(key)
                    self.warn(pod, problem)
                continue
            yield from groups
