"""PodDisruptionBudget kind: the docs' manifests, the spec rules, kubectl's columns."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from skiff.api import kinds, manifest, printers

DOCS = Path(__file__).resolve().parents[3] / "fixtures" / "kubernetes-docs"
KIND = kinds.kind_named("PodDisruptionBudget")


def _pdb(spec: str):
    (doc,) = manifest.parse_text(f"""
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: b}}
spec:
{spec}
""", source="pdb.yaml")
    return doc


@pytest.mark.parametrize("name, field, value", [
    ("zookeeper-pod-disruption-budget-minavailable.yaml", "min_available", "2"),
    ("zookeeper-pod-disruption-budget-maxunavailable.yaml", "max_unavailable", "1"),
])
def test_the_docs_budgets_parse(name, field, value):
    (doc,) = manifest.load([str(DOCS / "policy" / name)])
    assert doc.ok, doc.errors
    assert getattr(doc.obj.spec, field) == value
    assert dict(doc.obj.spec.selector.match_labels) == {"app": "zookeeper"}
    assert kinds.kind_for_resource("pdb") is KIND


def test_exactly_one_of_min_available_and_max_unavailable():
    both = _pdb("  minAvailable: 1\n  maxUnavailable: 1\n  selector: {matchLabels: {app: a}}")
    assert [(e.path, e.message) for e in both.errors] == [
        ("spec", "Invalid value: minAvailable and maxUnavailable cannot be both set")]
    neither = _pdb("  selector: {matchLabels: {app: a}}")
    assert [e.path for e in neither.errors] == ["spec.minAvailable"]
    assert "one of minAvailable and maxUnavailable must be set" in neither.errors[0].message


@pytest.mark.parametrize("value, ok", [("0", True), ("3", True), ("50%", True), ("100%", True), ("-1", False),
                                       ("101%", False), ("half", False), ("1.5", False)])
def test_int_or_percent(value, ok):
    doc = _pdb(f"  maxUnavailable: {value!r}\n  selector: {{matchLabels: {{app: a}}}}")
    assert doc.ok is ok, doc.errors
    if not ok:
        assert [e.path for e in doc.errors] == ["spec.maxUnavailable"]


def test_a_yaml_integer_is_kept_as_its_text_and_printed_as_a_number():
    doc = _pdb("  minAvailable: 2\n  selector: {matchLabels: {app: a}}")
    assert doc.ok and doc.obj.spec.min_available == "2"
    assert printers.to_dict(doc.obj)["spec"]["minAvailable"] == 2   # as Kubernetes writes it
    doc = _pdb("  maxUnavailable: 25%\n  selector: {matchLabels: {app: a}}")
    assert printers.to_dict(doc.obj)["spec"]["maxUnavailable"] == "25%"


def test_selector_and_policy_checked():
    doc = _pdb("  minAvailable: 1\n  unhealthyPodEvictionPolicy: Sometimes\n"
               "  selector: {matchExpressions: [{key: app, operator: Near, values: [a]}]}")
    assert sorted(e.path for e in doc.errors) == ["spec.selector.matchExpressions[0].operator",
                                                  "spec.unhealthyPodEvictionPolicy"]
    assert _pdb("  minAvailable: 1\n  selector: {}").ok   # policy/v1: an empty selector selects every pod


def test_status_is_not_taken_from_the_user_and_columns_are_kubectls():
    doc = _pdb("  minAvailable: 50%\n  selector: {matchLabels: {app: a}}")
    obj = doc.obj
    obj.status.disruptions_allowed = 7
    created = KIND.strategy.prepare_create(KIND.strategy.defaults(obj))
    assert created.status.disruptions_allowed == 0
    assert KIND.strategy.columns(wide=False) == ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS",
                                                 "AGE"]
    created.status.disruptions_allowed = 1
    row = KIND.strategy.row(created, wide=False, now=datetime.now(timezone.utc))
    assert row[:4] == ["b", "50%", "N/A", "1"]
