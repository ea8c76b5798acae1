"""A Job on the real runtime: parallelism 2, completions 4, each pod a real
busybox process that exits 0; `skiff wait --for=condition=complete job/NAME`
returns once it is done, as kubectl's."""
from __future__ import annotations

import json
import os

import pytest

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: count
spec:
  completions: 4
  parallelism: 2
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: [sh, -c, "echo done"]
"""


def test_job_with_parallelism_2_and_completions_4_completes(private_cluster, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr
    (tmp_path / "job.yaml").write_text(JOB)
    applied = c.skiff("apply", "-f", str(tmp_path / "job.yaml"))
    assert (applied.returncode, applied.stdout) == (0, "job/count created\n"), applied.stderr
    waited = c.skiff("wait", "--for=condition=complete", "job/count", "--timeout", "180s", timeout=200)
    assert waited.returncode == 0, waited.stderr + c.skiff("describe", "job", "count").stdout
    job = json.loads(c.skiff("get", "job", "count", "-o", "json").stdout)
    assert (job["status"]["succeeded"], job["status"].get("failed", 0)) == (4, 0)
    pods = json.loads(c.skiff("get", "pods", "-l", "batch.kubernetes.io/job-name=count", "-o", "json").stdout)
    assert [p["status"]["phase"] for p in pods["items"]] == ["Succeeded"] * 4
    logs = c.skiff("logs", pods["items"][0]["metadata"]["name"])
    assert logs.stdout == "done\n"
    table = c.skiff("get", "jobs").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert table[1].split()[:3] == ["count", "Complete", "4/4"]


CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "*/1 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: main
            image: busybox
            command: [sh, -c, "echo tick"]
"""


def test_cronjob_every_minute_runs_within_70_seconds(private_cluster, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    import time
    c = private_cluster
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr
    (tmp_path / "cj.yaml").write_text(CRONJOB)
    applied = c.skiff("apply", "-f", str(tmp_path / "cj.yaml"))
    assert (applied.returncode, applied.stdout) == (0, "cronjob/tick created\n"), applied.stderr
    deadline = time.monotonic() + 70
    while True:
        jobs = json.loads(c.skiff("get", "jobs", "-o", "json").stdout)["items"]
        if jobs:
            break
        assert time.monotonic() < deadline, "no Job within 70 s\n" + c.skiff("describe", "cronjob", "tick").stdout
        time.sleep(1)
    name = jobs[0]["metadata"]["name"]
    assert name.startswith("tick-")
    waited = c.skiff("wait", "--for=condition=complete", f"job/{name}", "--timeout", "120s", timeout=140)
    assert waited.returncode == 0, waited.stderr + c.skiff("describe", "job", name).stdout
    pods = json.loads(c.skiff("get", "pods", "-l", f"batch.kubernetes.io/job-name={name}", "-o", "json").stdout)
    assert c.skiff("logs", pods["items"][0]["metadata"]["name"]).stdout == "tick\n"
    cj = json.loads(c.skiff("get", "cronjob", "tick", "-o", "json").stdout)
    assert cj["status"]["lastScheduleTime"]
