"""Job kind: the docs' manifest parses unchanged, Kubernetes' defaults and
generated selector, bad specs refused with the field path."""
from __future__ import annotations

from pathlib import Path

import pytest

from skiff.api import kinds, manifest
from skiff.api.kinds.job import CONTROLLER_UID, JOB_NAME

DOCS = Path(__file__).resolve().parents[3] / "fixtures" / "kubernetes-docs"

JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: work}
spec:
  %(spec)s
  template:
    spec:
      restartPolicy: %(restart)s
      containers: [{name: c, image: busybox}]
"""


def _job(spec: str = "{}", restart: str = "Never"):
    (doc,) = manifest.parse_text(JOB % {"spec": spec if spec != "{}" else "parallelism: 1", "restart": restart},
                                 source="job.yaml")
    return doc


def test_docs_job_parses_and_gets_a_generated_selector():
    (doc,) = manifest.load([str(DOCS / "controllers/job.yaml")])
    assert doc.ok, doc.errors
    strategy = kinds.kind_named("Job").strategy
    job = strategy.prepare_create(strategy.defaults(doc.obj))
    assert not strategy.validate(job)
    assert (job.spec.parallelism, job.spec.backoff_limit, job.spec.completion_mode) == (1, 4, "NonIndexed")
    assert job.spec.template.spec.restart_policy == "Never"
    assert dict(job.spec.selector.match_labels) == {CONTROLLER_UID: job.metadata.uid}
    assert job.spec.template.metadata.labels[JOB_NAME] == "pi"


@pytest.mark.parametrize("spec, restart, path, message", [
    ("parallelism: 1", "Always", "spec.template.spec.restartPolicy", 'supported values: "OnFailure", "Never"'),
    ("parallelism: 1", '""', "spec.template.spec.restartPolicy", "Required value"),
    ("completions: -1", "Never", "spec.completions", "must be greater than or equal to 0"),
    ("completionMode: Sometimes", "Never", "spec.completionMode", 'Unsupported value: "Sometimes"'),
    ("completionMode: Indexed", "Never", "spec.completions", "Required value"),
    ("backoffLimit: -2", "Never", "spec.backoffLimit", "must be greater than or equal to 0"),
])
def test_bad_jobs_are_refused_with_the_field_path(spec, restart, path, message):
    doc = _job(spec, restart)
    assert not doc.ok
    assert any(e.path == path and message in e.message for e in doc.errors), doc.errors


def test_template_is_immutable():
    strategy = kinds.kind_named("Job").strategy
    old = strategy.prepare_create(strategy.defaults(_job().obj))
    new = type(old)()
    new.CopyFrom(old)
    new.spec.template.spec.containers[0].image = "busybox:2"
    assert [e.path for e in strategy.validate_update(old, new)] == ["spec.template"]
