"""kubectl's object verbs through the real `skiff` command against a real
control plane: apply's three-way merge, diff, prune, patch, label, annotate,
edit (with a scripted $EDITOR), get's output formats, api-resources, explain."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from tests.skiff.cli.conftest import ROOT, Result

pytestmark = pytest.mark.etcd

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{{labels}}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {image}
    env: [{env}]
"""


def pod(name="web", *, labels="app: web", image="busybox", env="{name: A, value: '1'}"):
    return POD.format(name=name, labels=labels, image=image, env=env)


@pytest.fixture
def sk(tmp_path):
    """sk(*args, server=..., env={...}) -> Result: the skiff command, with extra environment."""
    base = dict(os.environ, SKIFF_CONFIG=str(tmp_path / "skiff-config"),
                PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    base.pop("SKIFF_SERVER", None)

    def run(*args: str, server: str, env: dict | None = None, input: str | None = None) -> Result:
        proc = subprocess.run([sys.executable, "-m", "skiff.cli.main", "--server", server, *args], cwd=tmp_path,
                              env={**base, **(env or {})}, input=input, capture_output=True, text=True, timeout=60)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def get_json(sk, server, *what):
    result = sk("get", *what, "-o", "json", server=server)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_apply_three_way_merge_removes_what_the_manifest_dropped_and_keeps_others_fields(sk, controlplane, tmp_path):
    (tmp_path / "p.yaml").write_text(pod(labels="app: web, tier: front"))
    assert sk("apply", "-f", "p.yaml", server=controlplane).stdout == "pod/web created\n"
    live = get_json(sk, controlplane, "pod", "web")
    applied = json.loads(live["metadata"]["annotations"][LAST_APPLIED])
    assert applied["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert LAST_APPLIED not in applied["metadata"].get("annotations", {})

    # Another writer adds a label; the manifest drops `tier` and changes the image.
    assert sk("label", "pod", "web", "owner=ops", server=controlplane).stdout == "pod/web labeled\n"
    (tmp_path / "p.yaml").write_text(pod(labels="app: web", image="busybox:2"))
    result = sk("apply", "-f", "p.yaml", server=controlplane)
    assert (result.returncode, result.stdout) == (0, "pod/web configured\n"), result.stderr
    live = get_json(sk, controlplane, "pod", "web")
    assert live["metadata"]["labels"] == {"app": "web", "owner": "ops"}
    assert live["spec"]["containers"][0]["image"] == "busybox:2"
    assert live["status"]["phase"] == "Pending"         # the server's, kept
    assert sk("apply", "-f", "p.yaml", server=controlplane).stdout == "pod/web unchanged\n"

    # An env var removed from the manifest would be removed too: a pod's env is
    # immutable, so the server refuses the change, and says why.
    (tmp_path / "p.yaml").write_text(pod(labels="app: web", image="busybox:2", env=""))
    dry = sk("apply", "-f", "p.yaml", "--dry-run=client", server=controlplane)
    assert (dry.returncode, dry.stdout) == (0, "pod/web configured (dry run)\n")
    refused = sk("apply", "-f", "p.yaml", server=controlplane)
    assert refused.returncode == 1 and "Forbidden" in refused.stderr
    assert get_json(sk, controlplane, "pod", "web")["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]


def test_apply_dry_runs_store_nothing(sk, controlplane, tmp_path):
    (tmp_path / "p.yaml").write_text(pod())
    assert sk("apply", "-f", "p.yaml", "--dry-run=client", server=controlplane).stdout == "pod/web created (dry run)\n"
    assert sk("apply", "-f", "p.yaml", "--dry-run=server",
              server=controlplane).stdout == "pod/web created (server dry run)\n"
    assert sk("get", "pods", "-o", "name", server=controlplane).stdout == ""


def test_diff_exit_codes(sk, controlplane, tmp_path):
    (tmp_path / "p.yaml").write_text(pod())
    new = sk("diff", "-f", "p.yaml", server=controlplane)
    assert new.returncode == 1 and "+++ MERGED/v1.Pod.default.web" in new.stdout and "+  name: web" in new.stdout
    sk("apply", "-f", "p.yaml", server=controlplane)
    same = sk("diff", "-f", "p.yaml", server=controlplane)
    assert (same.returncode, same.stdout) == (0, "")
    (tmp_path / "p.yaml").write_text(pod(labels="app: web2"))
    changed = sk("diff", "-f", "p.yaml", server=controlplane)
    assert changed.returncode == 1
    assert "-    app: web\n" in changed.stdout and "+    app: web2\n" in changed.stdout
    assert "resourceVersion" not in changed.stdout and "generation" not in changed.stdout
    assert get_json(sk, controlplane, "pod", "web")["metadata"]["labels"] == {"app": "web"}   # nothing applied
    (tmp_path / "bad.yaml").write_text("kind: Nope\n")
    assert sk("diff", "-f", "bad.yaml", server=controlplane).returncode == 2


def test_apply_prune_deletes_what_the_manifests_no_longer_hold(sk, controlplane, tmp_path):
    (tmp_path / "all.yaml").write_text(pod("a", labels="app: shop") + "---\n" + pod("b", labels="app: shop"))
    (tmp_path / "other.yaml").write_text(pod("c", labels="app: blog"))
    sk("apply", "-f", "all.yaml", server=controlplane)
    sk("apply", "-f", "other.yaml", server=controlplane)
    sk("run", "manual", "--image", "busybox", "--labels", "app=shop", server=controlplane)  # not created by apply
    (tmp_path / "all.yaml").write_text(pod("a", labels="app: shop"))
    missing = sk("apply", "-f", "all.yaml", "--prune", server=controlplane)
    assert missing.returncode == 1 and "--all" in missing.stderr
    result = sk("apply", "-f", "all.yaml", "--prune", "-l", "app=shop", server=controlplane)
    assert (result.returncode, result.stdout) == (0, "pod/a unchanged\npod/b pruned\n"), result.stderr
    left = sk("get", "pods", "-o", "name", server=controlplane).stdout.split()
    assert sorted(left) == ["pod/a", "pod/c", "pod/manual"]


def test_patch_strategic_merge_and_json(sk, controlplane, tmp_path):
    (tmp_path / "p.yaml").write_text(pod(labels="app: web, tier: front"))
    sk("apply", "-f", "p.yaml", server=controlplane)
    strategic = sk("patch", "pod", "web", "-p",
                   '{"spec":{"containers":[{"name":"main","image":"busybox:3"}]}}', server=controlplane)
    assert (strategic.returncode, strategic.stdout) == (0, "pod/web patched\n"), strategic.stderr
    live = get_json(sk, controlplane, "pod", "web")
    assert live["spec"]["containers"][0]["image"] == "busybox:3"
    assert live["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]   # merged by name, kept

    merged = sk("patch", "pod/web", "--type", "merge", "-p", "metadata: {labels: {tier: null}}", server=controlplane)
    assert merged.stdout == "pod/web patched\n"
    assert get_json(sk, controlplane, "pod", "web")["metadata"]["labels"] == {"app": "web"}
    again = sk("patch", "pod/web", "--type", "merge", "-p", '{"metadata":{"labels":{"tier":null}}}', server=controlplane)
    assert again.stdout == "pod/web patched (no change)\n"

    jsonp = sk("patch", "pod", "web", "--type", "json", "-p",
               '[{"op":"add","path":"/metadata/labels/x","value":"1"}]', server=controlplane)
    assert jsonp.stdout == "pod/web patched\n"
    assert get_json(sk, controlplane, "pod", "web")["metadata"]["labels"] == {"app": "web", "x": "1"}

    failed = sk("patch", "pod", "web", "--type", "json", "-p", '[{"op":"remove","path":"/spec/nope"}]',
                server=controlplane)
    assert failed.returncode == 1 and failed.stderr.startswith("error: pod/web: the patch does not apply")
    invalid = sk("patch", "pod", "web", "--type", "merge", "-p", '{"spec":{"containerz":[]}}', server=controlplane)
    assert invalid.returncode == 1 and "containerz" in invalid.stderr
    gone = sk("patch", "pod", "nope", "-p", "{}", server=controlplane)
    assert (gone.returncode, gone.stderr) == (1, 'Error from server (NotFound): pods "nope" not found\n')


def test_label_and_annotate(sk, controlplane, tmp_path):
    (tmp_path / "p.yaml").write_text(pod("a") + "---\n" + pod("b"))
    sk("apply", "-f", "p.yaml", server=controlplane)
    assert sk("label", "pods", "a", "tier=front", server=controlplane).stdout == "pod/a labeled\n"
    clash = sk("label", "pod/a", "tier=back", server=controlplane)
    assert (clash.returncode, clash.stderr) == (1, "error: 'tier' already has a value (front), and --overwrite is false\n")
    assert sk("label", "pod/a", "tier=back", "--overwrite", server=controlplane).stdout == "pod/a labeled\n"
    assert sk("label", "pod/a", "tier-", server=controlplane).stdout == "pod/a unlabeled\n"
    assert get_json(sk, controlplane, "pod", "a")["metadata"]["labels"] == {"app": "web"}
    assert sk("label", "pods", "--all", "env=prod", server=controlplane).stdout == "pod/a labeled\npod/b labeled\n"

    assert sk("annotate", "pod", "b", "note=hello world", server=controlplane).stdout == "pod/b annotated\n"
    clash = sk("annotate", "pod", "b", "note=bye", server=controlplane)
    assert clash.returncode == 1 and "--overwrite is false" in clash.stderr
    assert sk("annotate", "pod", "b", "note-", server=controlplane).stdout == "pod/b annotated\n"
    assert "note" not in get_json(sk, controlplane, "pod", "b")["metadata"].get("annotations", {})
    missing = sk("label", "pod", "zzz", "a=b", server=controlplane)
    assert (missing.returncode, missing.stderr) == (1, 'Error from server (NotFound): pods "zzz" not found\n')


def test_get_formats_and_several_kinds(sk, controlplane, tmp_path):
    (tmp_path / "p.yaml").write_text(pod("a", labels="app: web") + "---\n" + pod("b", labels="app: db"))
    sk("apply", "-f", "p.yaml", server=controlplane)
    out = sk("get", "pods", "-o", 'jsonpath={range .items[*]}{.metadata.name}{"\\n"}{end}', server=controlplane)
    assert out.stdout == "a\nb\n"
    one = sk("get", "pod", "a", "-o", "jsonpath={.spec.containers[?(@.name==\"main\")].image}", server=controlplane)
    assert one.stdout == "busybox"
    (tmp_path / "t.txt").write_text("{.items[*].metadata.labels.app}")
    assert sk("get", "pods", "-o", "jsonpath-file=t.txt", server=controlplane).stdout == "web db"
    bad = sk("get", "pods", "-o", "jsonpath={.x[", server=controlplane)
    assert (bad.returncode, bad.stderr) == (1, "error: error parsing jsonpath {.x[, unterminated array\n")

    cols = sk("get", "pods", "-o", "custom-columns=NAME:.metadata.name,APP:.metadata.labels.app,NODE:.spec.nodeName",
              server=controlplane)
    assert [line.split() for line in cols.stdout.splitlines()] == [
        ["NAME", "APP", "NODE"], ["a", "web", "<none>"], ["b", "db", "<none>"]]
    bad = sk("get", "pods", "-o", "custom-columns=NAME", server=controlplane)
    assert bad.returncode == 1 and "unexpected custom-columns spec: NAME" in bad.stderr
    bad = sk("get", "pods", "-o", "bogus", server=controlplane)
    assert bad.returncode == 1 and 'output format "bogus"' in bad.stderr

    labels = sk("get", "pods", "--show-labels", "--no-headers", server=controlplane).stdout.splitlines()
    assert [line.split()[0] for line in labels] == ["a", "b"] and labels[0].endswith("app=web")
    assert sk("get", "pods", "--field-selector", "metadata.name=b", "-o", "name",
              server=controlplane).stdout == "pod/b\n"
    assert sk("get", "pod/a", "pod/b", "-o", "name", server=controlplane).stdout == "pod/a\npod/b\n"

    several = sk("get", "pods,nodes", "-o", "name", server=controlplane)
    assert several.stdout == "pod/a\npod/b\n"
    table = sk("get", "pods,events", server=controlplane).stdout
    assert "pod/a" in table
    missing = sk("get", "pod", "a", "zzz", "-o", "name", server=controlplane)
    assert (missing.returncode, missing.stdout) == (1, "pod/a\n")
    assert missing.stderr == 'Error from server (NotFound): pods "zzz" not found\n'


def test_delete_by_type_slash_name_and_selector(sk, controlplane, tmp_path):
    (tmp_path / "p.yaml").write_text(pod("a", labels="app: x") + "---\n" + pod("b", labels="app: y")
                                     + "---\n" + pod("c", labels="app: y"))
    sk("apply", "-f", "p.yaml", server=controlplane)
    assert sk("delete", "pod/a", server=controlplane).stdout == 'pod "a" deleted\n'
    assert sk("delete", "pods", "-l", "app=y", server=controlplane).stdout == 'pod "b" deleted\npod "c" deleted\n'
    assert sk("get", "pods", "-o", "name", server=controlplane).stdout == ""


def editor(tmp_path, name: str, body: str) -> str:
    """An executable $EDITOR: a Python script given the file to edit as argv[1]."""
    script = tmp_path / name
    script.write_text(f"#!{sys.executable}\nimport sys, pathlib\npath = pathlib.Path(sys.argv[1])\n{body}")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_edit_with_a_scripted_editor(sk, controlplane, tmp_path):
    (tmp_path / "p.yaml").write_text(pod(labels="app: web"))
    sk("apply", "-f", "p.yaml", server=controlplane)

    unchanged = sk("edit", "pod", "web", server=controlplane, env={"EDITOR": "true"})
    assert (unchanged.returncode, unchanged.stdout) == (0, "Edit cancelled, no changes made.\n")

    good = editor(tmp_path, "good.py", "path.write_text(path.read_text().replace('app: web', 'app: edited'))\n")
    result = sk("edit", "pod/web", server=controlplane, env={"KUBE_EDITOR": good, "EDITOR": "false"})
    assert (result.returncode, result.stdout) == (0, "pod/web edited\n"), result.stderr
    assert get_json(sk, controlplane, "pod", "web")["metadata"]["labels"] == {"app": "edited"}

    # First a bad edit (an unknown field); the file comes back with the error on
    # top and the user's text kept; the second pass fixes it.
    bad_then_good = editor(tmp_path, "twice.py", """\
text = path.read_text()
seen = pathlib.Path(sys.argv[1] + '.seen')
if 'bogusField' not in text:
    path.write_text(text.replace('restartPolicy: Never', 'restartPolicy: Never\\n  bogusField: 1'))
else:
    pathlib.Path(__file__).with_suffix('.second').write_text(text)
    path.write_text(text.replace('  bogusField: 1\\n', '').replace('app: edited', 'app: fixed'))
""")
    result = sk("edit", "pod", "web", server=controlplane, env={"EDITOR": bad_then_good})
    assert (result.returncode, result.stdout) == (0, "pod/web edited\n"), result.stderr
    second = (tmp_path / "twice.second").read_text()
    assert second.startswith("# Please edit the object below.")
    assert '# pods "web" was not valid:\n# * spec.bogusField: unknown field' in second
    assert "  bogusField: 1\n" in second and "app: edited" in second     # the user's text kept
    assert get_json(sk, controlplane, "pod", "web")["metadata"]["labels"] == {"app": "fixed"}

    # A bad edit saved again unchanged gives up, keeping a copy.
    always_bad = editor(tmp_path, "bad.py", """\
text = path.read_text()
if 'bogusField' not in text:
    path.write_text(text.replace('restartPolicy: Never', 'restartPolicy: Never\\n  bogusField: 1'))
""")
    kept = tmp_path / "kept"   # the copy goes to $TMPDIR, as kubectl's: here, not the machine's /tmp
    kept.mkdir()
    result = sk("edit", "pod", "web", server=controlplane, env={"EDITOR": always_bad, "TMPDIR": str(kept)})
    assert result.returncode == 1
    assert result.stderr.endswith("error: Edit cancelled, no valid changes were saved.\n")
    [copy] = kept.iterdir()
    assert f'A copy of your changes has been stored to "{copy}"' in result.stderr
    assert "bogusField: 1" in copy.read_text()
    missing = sk("edit", "pod", "nope", server=controlplane, env={"EDITOR": "true"})
    assert (missing.returncode, missing.stderr) == (1, 'Error from server (NotFound): pods "nope" not found\n')


def test_api_resources_and_explain(sk, controlplane):
    table = sk("api-resources", server=controlplane).stdout.splitlines()
    assert table[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert rows["nodes"] == ["nodes", "no", "v1", "false", "Node"]
    assert rows["leases"] == ["leases", "coordination.k8s.io/v1", "true", "Lease"]
    assert "nodes" not in sk("api-resources", "--namespaced=true", "-o", "name", server=controlplane).stdout.split()

    pods = sk("explain", "pods", server=controlplane).stdout
    assert pods.startswith("KIND:       Pod\nVERSION:    v1\n\nDESCRIPTION:\n")
    assert "  spec\t<PodSpec>\n" in pods and "  metadata\t<ObjectMeta>\n" in pods
    ports = sk("explain", "pods.spec.containers.ports", server=controlplane).stdout
    assert "FIELD: ports <[]ContainerPort>\n" in ports
    assert "  containerPort\t<integer>\n" in ports and "  hostIP\t<string>\n" in ports
    assert "  protocol\t<string>\n    TCP (default) or UDP\n" in ports        # the .proto comment
    labels = sk("explain", "po.metadata.labels", server=controlplane).stdout
    assert "FIELD: labels <map[string]string>\n" in labels
    bad = sk("explain", "pods.spec.nope", server=controlplane)
    assert (bad.returncode, bad.stderr) == (1, 'error: field "nope" does not exist\n')
    unknown = sk("explain", "widgets", server=controlplane)
    assert unknown.returncode == 1 and "widgets" in unknown.stderr


def test_apply_removes_a_data_key_the_manifest_dropped(sk, controlplane, tmp_path):
    config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n{data}"
    (tmp_path / "c.yaml").write_text(config.format(data="  a: '1'\n  b: '2'\n"))
    assert sk("apply", "-f", "c.yaml", server=controlplane).stdout == "configmap/settings created\n"
    sk("label", "configmap", "settings", "owner=ops", server=controlplane)
    (tmp_path / "c.yaml").write_text(config.format(data="  a: '10'\n"))
    diff = sk("diff", "-f", "c.yaml", server=controlplane)
    assert diff.returncode == 1 and "-  b: \"2\"\n" in diff.stdout.replace("'", '"')
    assert sk("apply", "-f", "c.yaml", server=controlplane).stdout == "configmap/settings configured\n"
    live = get_json(sk, controlplane, "configmap", "settings")
    assert live["data"] == {"a": "10"} and live["metadata"]["labels"] == {"owner": "ops"}
    assert sk("apply", "-f", "c.yaml", server=controlplane).stdout == "configmap/settings unchanged\n"


def test_create_from_a_file_keeps_no_last_applied_and_refuses_an_existing_object(sk, controlplane, tmp_path):
    (tmp_path / "p.yaml").write_text(pod("made"))
    created = sk("create", "-f", "p.yaml", server=controlplane)
    assert (created.returncode, created.stdout) == (0, "pod/made created\n"), created.stderr
    stored = json.loads(sk("get", "pod", "made", "-o", "json", server=controlplane).stdout)
    assert LAST_APPLIED not in stored["metadata"].get("annotations", {})
    again = sk("create", "-f", "p.yaml", server=controlplane)
    assert again.returncode == 1 and again.stderr.startswith("Error from server (AlreadyExists): ")
    assert "made" in again.stderr and "already exists" in again.stderr
    missing = sk("create", server=controlplane)
    assert missing.returncode == 1 and "give -f FILE" in missing.stderr
