"""Jobs and CronJobs from the command line against a real control plane:
the docs' CronJob applies unchanged, `create job --from=cronjob/NAME` makes
its Job, `create job --image` one of its own; bad input is refused with the
field path."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.etcd

DOCS = Path(__file__).resolve().parents[2] / "fixtures" / "kubernetes-docs"


def test_create_job_from_a_cronjob(skiff, controlplane):
    r = skiff("apply", "-f", str(DOCS / "application/job/cronjob.yaml"), server=controlplane)
    assert (r.returncode, r.stdout) == (0, "cronjob/hello created\n"), r.stderr
    r = skiff("get", "cronjobs", server=controlplane)
    assert r.stdout.splitlines()[1].split()[:5] == ["hello", "*", "*", "*", "*"]
    r = skiff("create", "job", "hello-now", "--from=cronjob/hello", server=controlplane)
    assert (r.returncode, r.stdout) == (0, "job/hello-now created\n"), r.stderr
    job = json.loads(skiff("get", "job", "hello-now", "-o", "json", server=controlplane).stdout)
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.28"
    r = skiff("create", "job", "x", "--from=cronjob/missing", server=controlplane)
    assert (r.returncode, r.stderr) == (1, 'error: cronjobs.batch "missing" not found\n')
    r = skiff("create", "job", "once", "--image", "busybox", "--", "echo", "hi", server=controlplane)
    assert (r.returncode, r.stdout) == (0, "job/once created\n"), r.stderr


def test_bad_schedule_is_refused_with_the_field_path(skiff, controlplane, tmp_path):
    text = (DOCS / "application/job/cronjob.yaml").read_text().replace('"* * * * *"', '"61 * * * *"')
    (tmp_path / "bad.yaml").write_text(text)
    r = skiff("apply", "-f", "bad.yaml", server=controlplane)
    assert r.returncode == 1
    assert "spec.schedule" in r.stderr and "minute value 61 is out of range (0-59)" in r.stderr
    assert "hello" not in skiff("get", "cronjobs", server=controlplane).stdout
