"""Deployment and ReplicaSet kinds: the Kubernetes docs' manifests parse
unchanged and get Kubernetes' defaults; bad specs are refused with the field
path; printers show kubectl's columns."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from proto.skiff.v1 import apps_pb2
from skiff.api import kinds, manifest

DOCS = Path(__file__).resolve().parents[3] / "fixtures" / "kubernetes-docs"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _load(text: str):
    (doc,) = manifest.parse_text(text, source="test.yaml")
    return doc


@pytest.mark.parametrize("path, kind, replicas", [
    ("controllers/nginx-deployment.yaml", "Deployment", 3),
    ("controllers/frontend.yaml", "ReplicaSet", 3),
    ("application/deployment.yaml", "Deployment", 2),
    ("application/deployment-update.yaml", "Deployment", 2),
    ("application/deployment-scale.yaml", "Deployment", 4),
])
def test_docs_manifests_parse_unchanged(path, kind, replicas):
    (doc,) = manifest.load([str(DOCS / path)])
    assert doc.ok, doc.errors
    assert type(doc.obj).__name__ == kind and doc.obj.spec.replicas == replicas


def test_deployment_defaults_are_kubernetes():
    (doc,) = manifest.load([str(DOCS / "controllers/nginx-deployment.yaml")])
    d = kinds.kind_of(doc.obj).strategy.defaults(doc.obj)
    assert d.spec.strategy.type == "RollingUpdate"
    assert (d.spec.strategy.rolling_update.max_surge, d.spec.strategy.rolling_update.max_unavailable) == ("25%", "25%")
    assert d.spec.revision_history_limit == 10 and d.spec.progress_deadline_seconds == 600
    assert d.spec.template.spec.restart_policy == "Always"


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: %(replicas)s
  selector: {matchLabels: {app: %(selector)s}}
  strategy: %(strategy)s
  template:
    metadata: {labels: {app: web}}
    spec:
      restartPolicy: %(restart)s
      containers: [{name: c, image: busybox}]
"""


def _deployment(**kw):
    values = {"replicas": 2, "selector": "web", "strategy": "{}", "restart": "Always", **kw}
    return _load(DEPLOYMENT % values)


def test_int_or_string_accepts_integers_and_percentages():
    doc = _deployment(strategy="{rollingUpdate: {maxSurge: 1, maxUnavailable: '50%'}}")
    assert doc.ok, doc.errors
    assert doc.obj.spec.strategy.rolling_update.max_surge == "1"


@pytest.mark.parametrize("changes, path, message", [
    ({"selector": "other"}, "spec.template.metadata.labels", "`selector` does not match template `labels`"),
    ({"replicas": -1}, "spec.replicas", "must be greater than or equal to 0"),
    ({"strategy": "{rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}"}, "spec.strategy.rollingUpdate.maxUnavailable",
     "may not be 0 when `maxSurge` is 0"),
    ({"strategy": "{rollingUpdate: {maxSurge: 'lots'}}"}, "spec.strategy.rollingUpdate.maxSurge",
     "must be an integer or a percentage"),
    ({"strategy": "{type: Sideways}"}, "spec.strategy.type", 'Unsupported value: "Sideways"'),
    ({"strategy": "{type: Recreate, rollingUpdate: {maxSurge: 1}}"}, "spec.strategy.rollingUpdate",
     "may not be specified when strategy `type` is 'Recreate'"),
    ({"restart": "OnFailure"}, "spec.template.spec.restartPolicy", 'supported values: "Always"'),
])
def test_bad_deployments_are_refused_with_the_field_path(changes, path, message):
    doc = _deployment(**changes)
    assert not doc.ok
    assert any(e.path == path and message in e.message for e in doc.errors), doc.errors


def test_missing_selector_is_required():
    doc = _load("""
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: busybox}]}
""")
    assert [e.path for e in doc.errors] == ["spec.selector"]


def test_selector_is_immutable():
    strategy = kinds.kind_named("Deployment").strategy
    old = _deployment().obj
    new = apps_pb2.Deployment()
    new.CopyFrom(old)
    new.spec.selector.match_labels["tier"] = "x"
    new.spec.template.metadata.labels["tier"] = "x"
    assert [e.path for e in strategy.validate_update(old, new)] == ["spec.selector"]


def test_generation_moves_with_the_spec_only():
    strategy = kinds.kind_named("Deployment").strategy
    old = strategy.prepare_create(strategy.defaults(_deployment().obj))
    same = apps_pb2.Deployment()
    same.CopyFrom(old)
    same.metadata.labels["x"] = "y"
    assert strategy.prepare_update(old, same).metadata.generation == 1
    same.spec.template.spec.containers[0].image = "busybox:2"
    assert strategy.prepare_update(old, same).metadata.generation == 2


def test_printer_columns():
    d = kinds.kind_named("Deployment").strategy
    obj = _deployment().obj
    obj.status.ready_replicas, obj.status.updated_replicas, obj.status.available_replicas = 1, 2, 1
    assert d.columns(wide=False) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert d.row(obj, wide=True, now=NOW)[:4] == ["web", "1/2", "2", "1"]
    assert d.row(obj, wide=True, now=NOW)[5:] == ["c", "busybox", "app=web"]
    rs = kinds.kind_named("ReplicaSet").strategy
    assert rs.columns(wide=True) == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES",
                                     "SELECTOR"]


def test_replicaset_describe_names_its_controller():
    from skiff.api.kinds.strategy import DescribeContext
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name, rs.metadata.namespace = "web-abc", "default"
    rs.metadata.owner_references.add(kind="Deployment", name="web", uid="u", controller=True)
    rs.metadata.annotations["deployment.kubernetes.io/revision"] = "2"
    rs.spec.replicas = 2
    rs.spec.selector.match_labels["app"] = "web"
    rs.spec.template.spec.containers.add(name="c", image="busybox")
    text = kinds.kind_named("ReplicaSet").strategy.describe(rs, DescribeContext(events=[], now=NOW))
    assert "Controlled By:  Deployment/web\n" in text
    assert "Annotations:    deployment.kubernetes.io/revision: 2\n" in text
    assert "Replicas:       0 current / 2 desired\n" in text
