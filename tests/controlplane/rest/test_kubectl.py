"""kubectl (as installed) against Skiff's REST front door: what a user types
and what they see."""
from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
import yaml

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  containers:
  - name: c
    image: busybox
    command: ["sleep", "1000"]
"""
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: d1}
spec:
  replicas: 1
  selector: {matchLabels: {app: d1}}
  template:
    metadata: {labels: {app: d1}}
    spec:
      containers: [{name: c, image: busybox, command: [sleep, "100"]}]
"""


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"kubectl failed ({result.returncode}): {result.stderr}"
    return result.stdout


def labels(rest, name: str) -> dict[str, str]:
    return json.loads(ok(rest.kubectl("get", "pod", name, "-o", "jsonpath={.metadata.labels}")))


def test_apply_get_patch_delete(rest, tmp_path):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD)
    assert ok(rest.kubectl("apply", "-f", str(manifest))).strip() == "pod/web created"
    # Change and remove a field: kubectl's three-way merge, through its own client-side apply.
    manifest.write_text(POD.replace("tier: front", 'role: "db"'))
    assert ok(rest.kubectl("apply", "-f", str(manifest))).strip() == "pod/web configured"
    assert labels(rest, "web") == {"app": "web", "role": "db"}

    table = ok(rest.kubectl("get", "pods")).splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:3] == ["web", "0/1", "Pending"]
    wide = ok(rest.kubectl("get", "pods", "-o", "wide")).splitlines()
    assert wide[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    as_yaml = yaml.safe_load(ok(rest.kubectl("get", "pod", "web", "-o", "yaml")))
    assert as_yaml["spec"]["containers"][0]["image"] == "busybox"
    as_json = json.loads(ok(rest.kubectl("get", "pods", "-o", "json")))
    assert [i["metadata"]["name"] for i in as_json["items"]] == ["web"]

    described = ok(rest.kubectl("describe", "pod", "web"))
    # kubectl aligns the values to its longest label ("Service Account:" on a secure cluster).
    assert re.search(r"^Name:\s+web$", described, re.M) and re.search(r"^\s+Image:\s+busybox$", described, re.M)
    assert re.search(r"^Service Account:\s+default$", described, re.M)

    ok(rest.kubectl("patch", "pod", "web", "--type", "merge", "-p", '{"metadata":{"labels":{"m":"1"}}}'))
    ok(rest.kubectl("patch", "pod", "web", "--type", "json", "-p",
                    '[{"op":"add","path":"/metadata/labels/j","value":"2"}]'))
    ok(rest.kubectl("patch", "pod", "web", "--type", "strategic", "-p",
                    '{"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}'))
    rv = ok(rest.kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.resourceVersion}"))
    ok(rest.kubectl("patch", "pod", "web", "--type", "merge", "-p", '{"metadata":{"labels":{"m":"1"}}}'))
    assert ok(rest.kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.resourceVersion}")) == rv  # a no-op
    ok(rest.kubectl("patch", "pod", "web", "--type", "merge", "-p", '{"metadata":{"finalizers":["example.com/x"]}}'))
    assert ok(rest.kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.finalizers}")) == '["example.com/x"]'
    ok(rest.kubectl("patch", "pod", "web", "--type", "json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]'))
    assert ok(rest.kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.finalizers}")) == ""
    ok(rest.kubectl("label", "pod", "web", "extra=yes"))
    assert labels(rest, "web") == {"app": "web", "role": "db", "m": "1", "j": "2", "extra": "yes"}
    assert ok(rest.kubectl("get", "pod", "web", "-o", "jsonpath={.spec.containers[0].image}")) == "busybox:1.36"

    assert ok(rest.kubectl("delete", "pod", "web")).strip() == 'pod "web" deleted'
    gone = rest.kubectl("get", "pods", "web")
    assert gone.returncode == 1
    assert gone.stderr.strip() == 'Error from server (NotFound): pods "web" not found'


def test_errors_as_kubernetes_words_them(rest, tmp_path):
    missing = rest.kubectl("get", "pods", "nope")
    assert (missing.returncode, missing.stderr.strip()) == (1, 'Error from server (NotFound): pods "nope" not found')
    bad = tmp_path / "bad.yaml"
    bad.write_text(POD.replace("    image: busybox\n", ""))
    invalid = rest.kubectl("apply", "-f", str(bad))
    assert invalid.returncode == 1
    assert "spec.containers[0].image" in invalid.stderr and "is invalid" in invalid.stderr
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD)
    ok(rest.kubectl("create", "-f", str(manifest)))
    again = rest.kubectl("create", "-f", str(manifest))
    assert (again.returncode, again.stderr.strip()) == (1, 'Error from server (AlreadyExists): error when creating '
                                                           f'"{manifest}": pods "web" already exists')
    # exec in a pod no node runs yet: an error at once, not a hang.
    execed = rest.kubectl("exec", "web", "--", "true", timeout=30)
    assert execed.returncode == 1 and 'pod "web" is not scheduled to a node yet' in execed.stderr


def test_watch_sees_a_change(rest, tmp_path):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD)
    ok(rest.kubectl("apply", "-f", str(manifest)))
    env_args = ["get", "pods", "-w", "--output-watch-events"]
    watcher = subprocess.Popen(["kubectl", "--cache-dir", str(rest.home / "cache"), *env_args],
                               env={"KUBECONFIG": str(rest.kubeconfig), "HOME": str(rest.home),
                                    "PATH": "/usr/bin:/bin"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = watcher.stdout.readline()
        assert first.split()[:2] == ["EVENT", "NAME"]
        assert watcher.stdout.readline().split()[:2] == ["ADDED", "web"]
        ok(rest.kubectl("delete", "pod", "web", "--wait=false"))
        assert watcher.stdout.readline().split()[:2] == ["DELETED", "web"]
    finally:
        watcher.kill()
        watcher.wait()


def test_explain_and_api_resources(rest):
    explained = ok(rest.kubectl("explain", "pod.spec.containers"))
    assert "KIND:       Pod" in explained and "FIELD: containers <[]Container>" in explained
    assert "image\t<string>" in explained
    resources = ok(rest.kubectl("api-resources")).splitlines()
    assert resources[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert ["pods", "po", "v1", "true", "Pod"] in [line.split() for line in resources]
    assert ["deployments", "deploy", "apps/v1", "true", "Deployment"] in [line.split() for line in resources]


def test_scale_and_foreground_delete(rest, tmp_path):
    manifest = tmp_path / "d.yaml"
    manifest.write_text(DEPLOYMENT)
    assert ok(rest.kubectl("apply", "-f", str(manifest))).strip() == "deployment.apps/d1 created"
    assert ok(rest.kubectl("scale", "deployment", "d1", "--replicas=3")).strip() == "deployment.apps/d1 scaled"
    assert ok(rest.kubectl("get", "deployment", "d1", "-o", "jsonpath={.spec.replicas}")) == "3"
    # The controllers run behind the same API: the ReplicaSet's pods appear.
    deadline = time.monotonic() + 60
    while len(ok(rest.kubectl("get", "pods", "-l", "app=d1", "-o", "name")).split()) != 3:
        assert time.monotonic() < deadline, "the deployment's pods did not appear"
        time.sleep(0.5)
    everything = ok(rest.kubectl("get", "all", "-o", "name")).split()
    assert "deployment.apps/d1" in everything and sum(n.startswith("pod/d1-") for n in everything) == 3
    assert ok(rest.kubectl("delete", "deployment", "d1", "--cascade=foreground", "--timeout=60s")).strip() \
        == 'deployment.apps "d1" deleted'
    assert ok(rest.kubectl("get", "replicasets", "-o", "name")).strip() == ""


def test_typed_create_commands(rest):
    """kubectl's `create <kind>` commands send protobuf: read for namespaces, configmaps,
    secrets, deployments, jobs and cronjobs."""
    assert ok(rest.kubectl("create", "namespace", "team")).strip() == "namespace/team created"
    assert ok(rest.kubectl("create", "configmap", "cm1", "-n", "team", "--from-literal=a=b", "--from-literal=c=d")
              ).strip() == "configmap/cm1 created"
    assert json.loads(ok(rest.kubectl("get", "cm", "cm1", "-n", "team", "-o", "jsonpath={.data}"))) == {
        "a": "b", "c": "d"}
    assert ok(rest.kubectl("create", "secret", "generic", "s1", "--from-literal=k=v")).strip() == "secret/s1 created"
    assert ok(rest.kubectl("get", "secret", "s1", "-o", "jsonpath={.data.k}")) == "dg=="   # base64 of "v"
    created = rest.kubectl("create", "deployment", "d", "--image=busybox", "--replicas=2", "--port=8080",
                           "--", "sleep", "100")
    assert ok(created).strip() == "deployment.apps/d created"
    spec = json.loads(ok(rest.kubectl("get", "deployment", "d", "-o", "json")))["spec"]
    assert (spec["replicas"], spec["selector"]["matchLabels"]) == (2, {"app": "d"})
    container = spec["template"]["spec"]["containers"][0]
    assert (container["name"], container["image"], container["command"]) == ("busybox", "busybox", ["sleep", "100"])
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert ok(rest.kubectl("create", "job", "j", "--image=busybox", "--", "echo", "hi")).strip() == "job.batch/j created"
    template = json.loads(ok(rest.kubectl("get", "job", "j", "-o", "json")))["spec"]["template"]["spec"]
    assert (template["restartPolicy"], template["containers"][0]["command"]) == ("Never", ["echo", "hi"])
    assert ok(rest.kubectl("create", "cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *", "--", "date")
              ).strip() == "cronjob.batch/cj created"
    cron = json.loads(ok(rest.kubectl("get", "cronjob", "cj", "-o", "json")))["spec"]
    assert cron["schedule"] == "*/5 * * * *"
    assert cron["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"] == ["date"]
    refused = rest.kubectl("create", "priorityclass", "high", "--value=1000")
    assert refused.returncode == 1


def test_diff_and_server_dry_run_change_nothing(rest, tmp_path):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD)
    ok(rest.kubectl("apply", "-f", str(manifest)))
    before = ok(rest.kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.resourceVersion}"))
    manifest.write_text(POD.replace("tier: front", "tier: back"))
    diff = rest.kubectl("diff", "-f", str(manifest))
    assert diff.returncode == 1, diff.stderr   # kubectl diff: 1 means "differences found"
    assert "-    tier: front" in diff.stdout and "+    tier: back" in diff.stdout
    ok(rest.kubectl("apply", "--dry-run=server", "-f", str(manifest)))
    assert labels(rest, "web") == {"app": "web", "tier": "front"}
    assert ok(rest.kubectl("get", "pod", "web", "-o", "jsonpath={.metadata.resourceVersion}")) == before


def test_describe_shows_the_objects_events(rest, tmp_path):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD)
    ok(rest.kubectl("apply", "-f", str(manifest)))
    # No node runs here: the scheduler records FailedScheduling about the pod.
    deadline = time.monotonic() + 60
    while "FailedScheduling" not in ok(rest.kubectl("get", "events", "--field-selector", "involvedObject.name=web")):
        assert time.monotonic() < deadline, "no FailedScheduling event about the pod"
        time.sleep(0.5)
    events = ok(rest.kubectl("describe", "pod", "web")).split("Events:")[1]
    assert "Warning  FailedScheduling" in events


def test_cluster_scoped_namespace_and_server_side_apply(rest, tmp_path):
    manifest = tmp_path / "ns.yaml"
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: team, labels: {owner: me}}\n")
    assert ok(rest.kubectl("apply", "-f", str(manifest))).strip() == "namespace/team created"
    assert ok(rest.kubectl("get", "ns", "team")).split()[-3:-1] == ["team", "Active"]
    pod = tmp_path / "pod.yaml"
    pod.write_text(POD)
    assert ok(rest.kubectl("apply", "--server-side", "-n", "team", "-f", str(pod))).strip() \
        == "pod/web serverside-applied"
    assert ok(rest.kubectl("get", "pods", "-n", "team", "-o", "name")).strip() == "pod/web"
    assert ok(rest.kubectl("delete", "ns", "team", "--timeout=60s")).strip() == 'namespace "team" deleted'
    gone = rest.kubectl("get", "ns", "team")
    assert (gone.returncode, gone.stderr.strip()) == (1, 'Error from server (NotFound): namespaces "team" not found')


def test_the_kubernetes_docs_manifests_apply(rest):
    """The docs' manifests (tests/fixtures/kubernetes-docs) through kubectl apply, as through skiff apply;
    each in a namespace of its own (several name the same pod differently, which Kubernetes refuses too)."""
    import re
    from pathlib import Path
    docs = sorted((Path(__file__).resolve().parents[2] / "fixtures" / "kubernetes-docs").rglob("*.yaml"))
    assert docs
    for i, manifest in enumerate(docs):
        own = any((d or {}).get("metadata", {}).get("namespace") for d in yaml.safe_load_all(manifest.read_text()))
        where = [] if own else ["-n", f"docs-{i}"]   # a manifest naming its namespace goes there
        if not own:
            ok(rest.kubectl("create", "namespace", f"docs-{i}"))
        applied = rest.kubectl("apply", *where, "-f", str(manifest))
        assert applied.returncode == 0, f"{manifest}: {applied.stderr}"
        lines = applied.stdout.splitlines()
        assert lines and all(re.fullmatch(r"[\w.]+/[\w.-]+ created", line) for line in lines), lines
        # Again: nothing to do, or (a list the server defaults inside, as Kubernetes' fieldRef.apiVersion)
        # a patch that changes nothing, which kubectl reports as "configured" against Kubernetes too.
        again = ok(rest.kubectl("apply", *where, "-f", str(manifest))).splitlines()
        assert all(line.endswith((" unchanged", " configured")) for line in again), (manifest, again)


def test_server_side_apply_conflicts_and_force(rest, tmp_path):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD)
    assert ok(rest.kubectl("apply", "--server-side", "-f", str(manifest))).strip() == "pod/web serverside-applied"
    theirs = tmp_path / "theirs.yaml"
    theirs.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {tier: back}\n")
    conflict = rest.kubectl("apply", "--server-side", "--field-manager=other", "-f", str(theirs))
    assert conflict.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .metadata.labels.tier' in conflict.stderr
    assert labels(rest, "web") == {"app": "web", "tier": "front"}
    forced = rest.kubectl("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", str(theirs))
    assert ok(forced).strip() == "pod/web serverside-applied"
    assert labels(rest, "web") == {"app": "web", "tier": "back"}
    # kubectl's configuration drops the label it lost: "other" still sets it, so it stays.
    manifest.write_text(POD.replace(", tier: front", ""))
    ok(rest.kubectl("apply", "--server-side", "-f", str(manifest)))
    assert labels(rest, "web") == {"app": "web", "tier": "back"}
