"""DaemonSet kind and node affinity matching."""
from __future__ import annotations

from pathlib import Path

from proto.skiff.v1 import types_pb2
from skiff.api import kinds, manifest, nodeaffinity

DOCS = Path(__file__).resolve().parents[3] / "fixtures" / "kubernetes-docs"


def test_docs_daemonset_parses_with_kubernetes_defaults():
    (doc,) = manifest.load([str(DOCS / "controllers/daemonset.yaml")])
    assert doc.ok, doc.errors
    ds = kinds.kind_named("DaemonSet").strategy.defaults(doc.obj)
    assert ds.spec.update_strategy.type == "RollingUpdate"
    assert ds.spec.update_strategy.rolling_update.max_unavailable == "1"
    assert ds.metadata.namespace == "kube-system"


def test_selector_must_match_the_template():
    (doc,) = manifest.parse_text("""
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: d}
spec:
  selector: {matchLabels: {app: a}}
  updateStrategy: {rollingUpdate: {maxUnavailable: 2}}
  template:
    metadata: {labels: {app: b}}
    spec: {containers: [{name: c, image: busybox}]}
""", source="d.yaml")
    assert [e.path for e in doc.errors] == ["spec.template.metadata.labels"]


def _node(name, **labels):
    n = types_pb2.Node()
    n.metadata.name = name
    n.metadata.labels.update(labels)
    return n


def test_node_selector_and_required_affinity():
    spec = types_pb2.PodSpec()
    spec.node_selector["disk"] = "ssd"
    assert nodeaffinity.pod_fits_node(spec, _node("a", disk="ssd"))
    assert not nodeaffinity.pod_fits_node(spec, _node("b"))
    spec = types_pb2.PodSpec()
    terms = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
    t = terms.add()
    t.match_expressions.add(key="zone", operator="In", values=["z1", "z2"])
    t.match_expressions.add(key="cores", operator="Gt", values=["4"])
    other = terms.add()
    other.match_fields.add(key="metadata.name", operator="In", values=["special"])
    assert nodeaffinity.pod_fits_node(spec, _node("a", zone="z1", cores="8"))
    assert not nodeaffinity.pod_fits_node(spec, _node("b", zone="z1", cores="2"))
    assert not nodeaffinity.pod_fits_node(spec, _node("c", zone="z3", cores="8"))
    assert nodeaffinity.pod_fits_node(spec, _node("special"))
