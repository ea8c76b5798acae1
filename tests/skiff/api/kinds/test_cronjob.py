"""CronJob kind: the docs' manifest parses unchanged; bad schedules, time
zones and policies are refused with the field path."""
from __future__ import annotations

from pathlib import Path

import pytest

from skiff.api import kinds, manifest

DOCS = Path(__file__).resolve().parents[3] / "fixtures" / "kubernetes-docs"

CRONJOB = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "%(schedule)s"
  %(extra)s
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: %(restart)s
          containers: [{name: c, image: busybox}]
"""


def _cronjob(schedule="*/5 * * * *", extra="suspend: false", restart="Never"):
    (doc,) = manifest.parse_text(CRONJOB % {"schedule": schedule, "extra": extra, "restart": restart},
                                 source="cj.yaml")
    return doc


def test_docs_cronjob_parses_with_kubernetes_defaults():
    (doc,) = manifest.load([str(DOCS / "application/job/cronjob.yaml")])
    assert doc.ok, doc.errors
    cj = kinds.kind_named("CronJob").strategy.defaults(doc.obj)
    assert (cj.spec.concurrency_policy, cj.spec.successful_jobs_history_limit,
            cj.spec.failed_jobs_history_limit) == ("Allow", 3, 1)
    assert kinds.kind_named("CronJob").strategy.columns(wide=False) == [
        "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"]


@pytest.mark.parametrize("kw, path, message", [
    ({"schedule": "61 * * * *"}, "spec.schedule", "minute value 61 is out of range"),
    ({"extra": "concurrencyPolicy: Sometimes"}, "spec.concurrencyPolicy", 'Unsupported value: "Sometimes"'),
    ({"extra": "timeZone: Mars/Olympus"}, "spec.timeZone", "unknown time zone"),
    ({"restart": "Always"}, "spec.jobTemplate.spec.template.spec.restartPolicy", 'supported values: "OnFailure"'),
    ({"extra": "startingDeadlineSeconds: -5"}, "spec.startingDeadlineSeconds", "greater than or equal to 0"),
])
def test_bad_cronjobs_are_refused_with_the_field_path(kw, path, message):
    doc = _cronjob(**kw)
    assert not doc.ok
    assert any(e.path == path and message in e.message for e in doc.errors), doc.errors


def test_a_time_zone_and_macro_are_fine():
    assert _cronjob("@hourly", "timeZone: Europe/Paris").ok
