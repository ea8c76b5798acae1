"""create deployment, scale, set image and rollout status|history|undo|restart|
pause|resume as a user types them, against a real control plane (its
Deployment and ReplicaSet controllers) and etcd. No agent runs: where pods
must be ready, the test marks them Ready through the API as a kubelet would."""
from __future__ import annotations

import pytest

from tests.fake_kubelet import kubelet

pytestmark = pytest.mark.etcd


def test_create_scale_set_image_history_and_undo(skiff, controlplane):
    def run(*args):
        return skiff(*args, server=controlplane)

    r = run("create", "deployment", "web", "--image", "busybox:1", "--replicas", "2", "--", "sleep", "3600")
    assert (r.returncode, r.stdout) == (0, "deployment/web created\n"), r.stderr
    with kubelet(controlplane):
        r = run("rollout", "status", "deployment/web", "--timeout", "60s")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[-1] == 'deployment "web" successfully rolled out'
        r = run("scale", "deploy/web", "--replicas", "3")
        assert (r.returncode, r.stdout) == (0, "deployment/web scaled\n"), r.stderr
        r = run("set", "image", "deployment/web", "busybox=busybox:2")
        assert (r.returncode, r.stdout) == (0, "deployment/web image updated\n"), r.stderr
        assert run("rollout", "status", "deploy", "web", "--timeout", "60s").returncode == 0
        r = run("get", "deployment", "web")
        assert r.stdout.split()[5:9] == ["web", "3/3", "3", "3"], r.stdout
        r = run("rollout", "history", "deployment/web")
        assert r.stdout.splitlines() == ["deployment/web", "REVISION  CHANGE-CAUSE", "1         <none>",
                                         "2         <none>", ""]
        r = run("rollout", "undo", "deployment/web")
        assert (r.returncode, r.stdout) == (0, "deployment/web rolled back\n"), r.stderr
        assert run("rollout", "status", "deployment/web", "--timeout", "60s").returncode == 0
        r = run("get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
        assert r.stdout == "busybox:1"
        r = run("rollout", "history", "deployment/web")
        assert [line.split()[0] for line in r.stdout.splitlines()[2:] if line] == ["2", "3"]
        r = run("rollout", "history", "deployment/web", "--revision", "3")
        assert r.stdout.startswith("deployment/web with revision #3\nPod Template:\n") and "busybox:1" in r.stdout
    r = run("rollout", "undo", "deployment/web", "--to-revision", "9")
    assert (r.returncode, r.stderr) == (1, "error: unable to find specified revision 9 in history\n")
    r = run("set", "image", "deployment/web", "nginx=nginx")
    assert (r.returncode, r.stderr) == (1, 'error: unable to find container named "nginx"\n')


def test_pause_resume_restart_and_refusals(skiff, controlplane):
    def run(*args):
        return skiff(*args, server=controlplane)

    assert run("create", "deployment", "web", "--image", "busybox").returncode == 0
    assert run("rollout", "pause", "deployment/web").stdout == "deployment/web paused\n"
    r = run("rollout", "pause", "deployment/web")
    assert (r.returncode, r.stderr) == (1, 'error: deployments.apps "web" is already paused\n')
    r = run("rollout", "undo", "deployment/web")
    assert r.returncode == 1 and "you cannot rollback a paused deployment" in r.stderr
    r = run("rollout", "restart", "deployment/web")
    assert r.returncode == 1 and "can't restart paused deployment" in r.stderr
    assert run("rollout", "resume", "deployment/web").stdout == "deployment/web resumed\n"
    r = run("rollout", "resume", "deployment/web")
    assert (r.returncode, r.stderr) == (1, 'error: deployments.apps "web" is not paused\n')
    assert run("rollout", "restart", "deployment/web").stdout == "deployment/web restarted\n"
    r = run("get", "deployment", "web", "-o", "yaml")
    assert "kubectl.kubernetes.io/restartedAt" in r.stdout
    r = run("scale", "deployment/missing", "--replicas", "2")
    assert (r.returncode, r.stderr) == (1, 'Error from server (NotFound): deployments "missing" not found\n')
    r = run("scale", "statefulset/db", "--replicas", "2")
    assert r.returncode == 1 and "cannot scale statefulset" in r.stderr
    r = run("scale", "deployment/web", "--replicas", "-1")
    assert r.returncode == 1 and "must be greater than or equal to 0" in r.stderr
    r = run("rollout", "status", "pod/web")
    assert r.returncode == 1 and "rollout is not supported for pods" in r.stderr
    r = run("rollout", "undo", "daemonset/agent")
    assert r.returncode == 1 and "rollout undo is not supported for daemonsets" in r.stderr


def test_rollout_status_fails_when_the_progress_deadline_is_exceeded(skiff, controlplane, tmp_path):
    (tmp_path / "d.yaml").write_text("""\
apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  replicas: 1
  progressDeadlineSeconds: 2
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec: {containers: [{name: c, image: busybox}]}
""")
    assert skiff("apply", "-f", "d.yaml", server=controlplane).returncode == 0
    # No kubelet: the pod never becomes ready, so the rollout makes no progress.
    r = skiff("rollout", "status", "deployment/stuck", "--timeout", "60s", server=controlplane)
    assert r.returncode == 1
    assert r.stderr == 'error: deployment "stuck" exceeded its progress deadline\n'


def test_the_docs_deployment_manifests_apply_in_turn(skiff, controlplane):
    """application/deployment.yaml, then -update (a new image), then -scale (4
    replicas), applied unchanged as the Kubernetes docs' tutorial does."""
    from pathlib import Path
    docs = Path(__file__).resolve().parents[2] / "fixtures" / "kubernetes-docs" / "application"

    def apply(name):
        return skiff("apply", "-f", str(docs / name), server=controlplane)
    r = apply("deployment.yaml")
    assert (r.returncode, r.stdout) == (0, "deployment/nginx-deployment created\n"), r.stderr
    r = apply("deployment-update.yaml")
    assert (r.returncode, r.stdout) == (0, "deployment/nginx-deployment configured\n"), r.stderr
    r = apply("deployment-scale.yaml")
    assert (r.returncode, r.stdout) == (0, "deployment/nginx-deployment configured\n"), r.stderr
    r = skiff("get", "deployment", "nginx-deployment", "-o",
              "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}", server=controlplane)
    assert r.stdout == "4 nginx:1.16.1"
    r = skiff("get", "rs", "-o", "wide", server=controlplane)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert any("nginx:1.16.1" in line and "app=nginx,pod-template-hash=" in line for line in lines[1:]), r.stdout
    r = skiff("describe", "deployment", "nginx-deployment", server=controlplane)
    assert r.returncode == 0, r.stderr
    assert "StrategyType:           RollingUpdate" in r.stdout
    assert "RollingUpdateStrategy:  25% max unavailable, 25% max surge" in r.stdout
    assert "NewReplicaSet:" in r.stdout
