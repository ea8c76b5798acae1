"""The CLI against a real control plane (and real etcd): apply, get, describe,
delete, run and wait as a user types them. No agent runs, so pods stay
Pending and unscheduled - which is all these commands need."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.skiff.cli.conftest import ROOT

pytestmark = pytest.mark.etcd

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {app}}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "echo hi"]
    resources:
      limits: {{cpu: 250m, memory: 64Mi}}
"""

BAD = """\
apiVersion: v1
kind: Pod
metadata:
  name: bad
spec:
  containers:
  - name: main
    image: busybox
    comand: [sh]
"""


def names(result) -> list[str]:
    return [item["metadata"]["name"] for item in json.loads(result.stdout)["items"]]


def test_apply_mixed_file_applies_good_documents_and_lists_bad_ones(skiff, controlplane, tmp_path):
    (tmp_path / "mixed.yaml").write_text(POD.format(name="one", app="web") + "---\n" + BAD + "---\n"
                                         + POD.format(name="two", app="db"))
    result = skiff("apply", "-f", "mixed.yaml", server=controlplane)
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["pod/one created", "pod/two created"]
    assert result.stderr.splitlines() == [
        "error: mixed.yaml:23: document 2 of 3: spec.containers[0].comand: unknown field 'comand' in "
        "Container; did you mean 'command'?"]
    listed = skiff("get", "pods", "-o", "json", server=controlplane)
    assert listed.returncode == 0
    assert sorted(names(listed)) == ["one", "two"]  # nothing of the bad document stored

    again = skiff("apply", "-f", "mixed.yaml", server=controlplane)
    assert again.stdout.splitlines() == ["pod/one unchanged", "pod/two unchanged"]
    (tmp_path / "one.yaml").write_text(POD.format(name="one", app="changed"))
    changed = skiff("apply", "-f", "one.yaml", server=controlplane)
    assert (changed.returncode, changed.stdout) == (0, "pod/one configured\n")


def test_get_output_formats(skiff, controlplane, tmp_path):
    (tmp_path / "pods.yaml").write_text(POD.format(name="web", app="web") + "---\n" + POD.format(name="db", app="db"))
    assert skiff("apply", "-f", "pods.yaml", server=controlplane).returncode == 0

    data = json.loads(skiff("get", "pods", "-o", "json", server=controlplane).stdout)
    assert data["apiVersion"] == "v1" and data["kind"] == "List"
    by_name = {item["metadata"]["name"]: item for item in data["items"]}
    assert set(by_name) == {"web", "db"}
    web = by_name["web"]
    assert web["kind"] == "Pod" and web["metadata"]["namespace"] == "default"
    assert web["metadata"]["labels"] == {"app": "web"} and web["metadata"]["uid"]
    assert web["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "250m", "memory": "64Mi"}
    assert web["status"]["phase"] == "Pending"

    one = json.loads(skiff("get", "pod", "web", "-o", "json", server=controlplane).stdout)
    assert one["kind"] == "Pod" and one["metadata"]["name"] == "web"

    selected = skiff("get", "pods", "-l", "app=db", "-o", "name", server=controlplane)
    assert selected.stdout == "pod/db\n"

    table = skiff("get", "pods", server=controlplane).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert sorted(line.split()[:4] for line in table[1:]) == [
        ["db", "0/1", "Pending", "0"], ["web", "0/1", "Pending", "0"]]
    # Read a page at a time (kubectl's --chunk-size) or whole: the same table.
    for chunk in ("1", "0"):
        paged = skiff("get", "pods", "--chunk-size", chunk, server=controlplane).stdout.splitlines()
        assert [line.split()[:4] for line in paged] == [line.split()[:4] for line in table]   # AGE moves on

    yaml_out = skiff("get", "pods", "-o", "yaml", server=controlplane).stdout
    assert yaml_out.startswith("apiVersion: v1\nkind: List\nitems:\n")

    elsewhere = skiff("get", "pods", "-n", "other", server=controlplane)
    assert elsewhere.stdout == "" and "No resources found in other namespace." in elsewhere.stderr

    missing = skiff("get", "pod", "nope", server=controlplane)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "nope" in missing.stderr


def test_describe_pod_shows_containers_and_conditions(skiff, controlplane, tmp_path):
    (tmp_path / "p.yaml").write_text(POD.format(name="web", app="web"))
    skiff("apply", "-f", "p.yaml", server=controlplane)
    text = skiff("describe", "pod", "web", server=controlplane).stdout
    assert text.splitlines()[0].split() == ["Name:", "web"]
    for expected in ("Namespace:", "Status:", "Pending", "Containers:", "  main:", "Image:", "busybox",
                     "Limits:", "memory:", "64Mi", "cpu:", "250m", "Events:"):
        assert expected in text, expected


def test_delete_waits_until_gone_and_delete_by_file(skiff, controlplane, tmp_path):
    (tmp_path / "pods.yaml").write_text(POD.format(name="a", app="x") + "---\n" + POD.format(name="b", app="x"))
    skiff("apply", "-f", "pods.yaml", server=controlplane)
    result = skiff("delete", "pod", "a", server=controlplane)
    assert (result.returncode, result.stdout) == (0, 'pod "a" deleted\n')
    assert names(skiff("get", "pods", "-o", "json", server=controlplane)) == ["b"]

    by_file = skiff("delete", "-f", "pods.yaml", "--ignore-not-found", server=controlplane)
    assert by_file.returncode == 0 and by_file.stdout == 'pod "b" deleted\n'
    assert names(skiff("get", "pods", "-o", "json", server=controlplane)) == []

    gone = skiff("delete", "pod", "a", server=controlplane)
    assert gone.returncode == 1 and gone.stderr == 'Error from server (NotFound): pods "a" not found\n'


def test_run_creates_a_pod_like_kubectl_run_with_docker_ports(skiff, controlplane):
    result = skiff("run", "web", "--image", "busybox", "-p", "5000:5000", "-p", "8080:80/udp", "--env", "A=1",
                   "--restart", "Never", "--limits", "cpu=500m,memory=128Mi", "--", "sh", "-c", "echo hi",
                   server=controlplane)
    assert (result.returncode, result.stdout) == (0, "pod/web created\n"), result.stderr
    pod = json.loads(skiff("get", "pod", "web", "-o", "json", server=controlplane).stdout)
    assert pod["metadata"]["labels"] == {"run": "web"}
    assert pod["spec"]["restartPolicy"] == "Never"
    [c] = pod["spec"]["containers"]
    assert c["image"] == "busybox" and c["args"] == ["sh", "-c", "echo hi"] and "command" not in c
    assert c["ports"] == [{"containerPort": 5000, "hostPort": 5000, "protocol": "TCP"},
                          {"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]
    assert c["env"] == [{"name": "A", "value": "1"}]
    assert c["resources"]["limits"] == {"cpu": "500m", "memory": "128Mi"}
    twice = skiff("run", "web", "--image", "busybox", server=controlplane)
    assert twice.returncode == 1 and twice.stderr == "error: pod/web already exists in namespace 'default'\n"


def test_wait_for_jsonpath_and_delete(skiff, controlplane, tmp_path):
    (tmp_path / "p.yaml").write_text(POD.format(name="w", app="w"))
    skiff("apply", "-f", "p.yaml", server=controlplane)
    met = skiff("wait", "pod", "w", "--for=jsonpath={.status.phase}=Pending", server=controlplane)
    assert (met.returncode, met.stdout) == (0, "pods/w condition met\n")
    timed_out = skiff("wait", "pod", "w", "--for=condition=Ready", "--timeout", "1s", server=controlplane)
    assert timed_out.returncode == 1
    assert timed_out.stderr == "error: timed out waiting for the condition on pods/w\n"

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    waiter = subprocess.Popen([sys.executable, "-m", "skiff.cli.main", "--server", controlplane, "wait", "pod", "w",
                               "--for=delete", "--timeout", "60s"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        skiff("delete", "pod", "w", "--no-wait", server=controlplane)
        out, err = waiter.communicate(timeout=60)
        assert (waiter.returncode, out) == (0, "pods/w condition met\n"), err
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_get_watch_prints_new_objects(skiff, controlplane, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    watcher = subprocess.Popen([sys.executable, "-m", "skiff.cli.main", "--server", controlplane, "get", "pods",
                                "-w", "-o", "name"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        (tmp_path / "p.yaml").write_text(POD.format(name="late", app="x"))
        assert skiff("apply", "-f", "p.yaml", server=controlplane).returncode == 0
        # Blocks until the watch prints (the suite's timeout bounds it).
        assert watcher.stdout.readline() == "pod/late\n"
    finally:
        watcher.kill()
        watcher.wait()


def test_apply_from_stdin_and_namespace_flag(skiff, controlplane):
    missing = skiff("apply", "-n", "team", "-f", "-", input=POD.format(name="s", app="s"), server=controlplane)
    assert (missing.returncode, missing.stderr) == (1, 'error: pod/s: namespaces "team" not found\n')
    namespace = skiff("apply", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n",
                      server=controlplane)
    assert (namespace.returncode, namespace.stdout) == (0, "namespace/team created\n"), namespace.stderr
    result = skiff("apply", "-n", "team", "-f", "-", input=POD.format(name="s", app="s"), server=controlplane)
    assert (result.returncode, result.stdout) == (0, "pod/s created\n"), result.stderr
    data = json.loads(skiff("get", "pods", "-A", "-o", "json", server=controlplane).stdout)
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in data["items"]] == [("team", "s")]
    table = skiff("get", "pods", "-A", server=controlplane).stdout.splitlines()
    assert table[0].split()[:2] == ["NAMESPACE", "NAME"] and table[1].split()[:2] == ["team", "s"]


def test_delete_all_and_by_selector(skiff, controlplane, tmp_path):
    (tmp_path / "pods.yaml").write_text("---\n".join(POD.format(name=n, app=a)
                                                     for n, a in (("a", "web"), ("b", "web"), ("c", "db"))))
    assert skiff("apply", "-f", "pods.yaml", server=controlplane).returncode == 0
    by_label = skiff("delete", "pods", "-l", "app=web", server=controlplane)
    assert (by_label.returncode, sorted(by_label.stdout.splitlines())) == (0, ['pod "a" deleted', 'pod "b" deleted'])
    assert names(skiff("get", "pods", "-o", "json", server=controlplane)) == ["c"]
    everything = skiff("delete", "pods", "--all", server=controlplane)
    assert (everything.returncode, everything.stdout) == (0, 'pod "c" deleted\n')
    nothing = skiff("delete", "pods", "--all", server=controlplane)
    assert (nothing.returncode, nothing.stdout) == (0, "")
    assert nothing.stderr == "No resources found in default namespace.\n"


NODE = """\
apiVersion: v1
kind: Node
metadata:
  name: skiff-test-node-a
  labels: {node-role.kubernetes.io/worker: ""}
status:
  capacity: {cpu: 2, memory: 4Gi, pods: 110}
"""


def test_cluster_scoped_nodes(skiff, controlplane, tmp_path):
    (tmp_path / "node.yaml").write_text(NODE)
    applied = skiff("apply", "-f", "node.yaml", "-n", "ignored-for-nodes", server=controlplane)
    assert (applied.returncode, applied.stdout) == (0, "node/skiff-test-node-a created\n"), applied.stderr
    table = skiff("get", "nodes", server=controlplane).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert table[1].split()[:3] == ["skiff-test-node-a", "Unknown", "worker"]
    one = json.loads(skiff("get", "node", "skiff-test-node-a", "-o", "json", server=controlplane).stdout)
    assert one["kind"] == "Node" and "namespace" not in one["metadata"]
    text = skiff("describe", "node", "skiff-test-node-a", server=controlplane).stdout
    assert text.splitlines()[0].split() == ["Name:", "skiff-test-node-a"]
    assert "Roles:" in text and "worker" in text and "Non-terminated Pods:  (0 in total)" in text
    deleted = skiff("delete", "node", "skiff-test-node-a", server=controlplane)
    assert (deleted.returncode, deleted.stdout) == (0, 'node "skiff-test-node-a" deleted\n'), deleted.stderr
