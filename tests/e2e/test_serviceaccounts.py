"""ServiceAccounts on a real (secure) `skiff up`, as a user meets them (decision 35):
every namespace has `default`; a pod gets a bound, expiring token, the cluster CA and
its namespace at /var/run/secrets/kubernetes.io/serviceaccount, read-only, and with
them reaches the API at https://kubernetes.default.svc with exactly the roles bound to
its account - 403 in Kubernetes' words before a RoleBinding, the list after one; the
real kubectl's `create token` mints a token the API takes, and refuses once its
account is deleted; a pod naming a missing account is refused."""
from __future__ import annotations

import base64
import json
import subprocess
import time

import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.test_web_server import BASE, _cached_base

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.etcd, pytest.mark.slow]

# The pod's client: what a Kubernetes client library does in a pod (in-cluster config).
CLIENT = r"""
import json, os, ssl, sys, time, urllib.error, urllib.request
D = "/var/run/secrets/kubernetes.io/serviceaccount"
def ask():
    token = open(f"{D}/token").read()
    namespace = open(f"{D}/namespace").read()
    context = ssl.create_default_context(cafile=f"{D}/ca.crt")
    request = urllib.request.Request(f"https://kubernetes.default.svc/api/v1/namespaces/{namespace}/pods",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as reply:
            body = json.loads(reply.read())
            return f"{reply.status} " + ",".join(sorted(p["metadata"]["name"] for p in body["items"]))
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {json.loads(exc.read())['message']}"
    except OSError as exc:
        return f"error {exc}"
try:
    open(f"{D}/token", "a")
    print("WRITABLE", flush=True)
except OSError as exc:
    print(f"read-only: {exc.strerror}", flush=True)
claims = open(f"{D}/token").read().split(".")[1]
print("CLAIMS " + claims, flush=True)
while True:
    print("ANSWER " + ask(), flush=True)
    time.sleep(1)
"""

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: reader, namespace: team}
spec:
  serviceAccountName: reader
  containers:
  - name: client
    image: %s
    imagePullPolicy: Never
    command: ["python3", "-c", %s]
""" % (BASE, json.dumps(CLIENT))

BINDING = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-view, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects:
- {kind: ServiceAccount, name: reader, namespace: team}
"""


def _claims(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _answers(c, after: int = 0) -> list[str]:
    logs = c.skiff("logs", "reader", "-n", "team")
    return [line[len("ANSWER "):] for line in logs.stdout.splitlines() if line.startswith("ANSWER ")][after:]



def test_a_pod_reaches_the_api_with_exactly_its_accounts_roles(private_cluster):
    c = private_cluster
    base = _cached_base()
    up = subprocess.run(c.up_args("--detach", "--secure"), env=c.env(), capture_output=True, text=True, timeout=240)
    assert up.returncode == 0, up.stdout + up.stderr
    loaded = c.skiff("image", "load", "--data-dir", str(c.data_dir), "-i", str(base), timeout=600)
    assert loaded.returncode == 0, loaded.stderr

    # Every namespace has `default` (the controller), as kubectl shows it.
    assert subprocess.run(["kubectl", "create", "namespace", "team"], env=c.env(), capture_output=True,
                          timeout=60).returncode == 0
    listed = wait_for("team's default account", lambda: (r := subprocess.run(
        ["kubectl", "get", "serviceaccounts", "-n", "team"], env=c.env(), capture_output=True, text=True,
        timeout=60)).returncode == 0 and "default" in r.stdout and r)
    assert listed.stdout.split("\n")[0].split() == ["NAME", "SECRETS", "AGE"]

    # A pod naming an account that does not exist: refused, in Kubernetes' words.
    (c.base / "pod.yaml").write_text(POD)
    refused = c.skiff("apply", "-f", str(c.base / "pod.yaml"))
    assert refused.returncode == 1
    assert ('pods "reader" is forbidden: error looking up service account team/reader: serviceaccount "reader" '
            'not found') in refused.stderr, refused.stderr

    made = c.skiff("create", "serviceaccount", "reader", "-n", "team")
    assert made.returncode == 0 and made.stdout == "serviceaccount/reader created\n", made.stdout + made.stderr
    applied = c.skiff("apply", "-f", str(c.base / "pod.yaml"))
    assert applied.returncode == 0, applied.stderr

    # Its token, read-only, bound to the pod; without a binding the API says 403 as Kubernetes does.
    first = wait_for("the pod's first answer", lambda: _answers(c))
    logs = c.skiff("logs", "reader", "-n", "team").stdout
    assert "read-only: Read-only file system" in logs and "WRITABLE" not in logs, logs
    claims = _claims(next(line for line in logs.splitlines() if line.startswith("CLAIMS "))[len("CLAIMS "):])
    pod = json.loads(c.skiff("get", "pod", "reader", "-n", "team", "-o", "json").stdout)
    assert claims["sub"] == "system:serviceaccount:team:reader"
    assert claims["kubernetes.io"]["pod"] == {"name": "reader", "uid": pod["metadata"]["uid"]}
    assert 3500 < claims["exp"] - claims["iat"] <= 3607
    assert first[0] == ('403 pods is forbidden: User "system:serviceaccount:team:reader" cannot list resource '
                        '"pods" in API group "" in the namespace "team"'), first

    # Bound to `view` in its namespace: the same client now lists the pods there.
    (c.base / "binding.yaml").write_text(BINDING)
    bound = c.skiff("apply", "-f", str(c.base / "binding.yaml"))
    assert bound.returncode == 0, bound.stderr
    seen = len(_answers(c))
    wait_for("the list after the binding", lambda: "200 reader" in _answers(c, seen))

    # kubectl's TokenRequest: a token for an audience and a lifetime, that the API takes; the
    # account deleted, the same token is refused.
    made = subprocess.run(["kubectl", "create", "token", "reader", "-n", "team", "--duration", "15m"],
                          env=c.env(), capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    minted = _claims(token.split(".")[1])
    assert minted["exp"] - minted["iat"] == 900 and "pod" not in minted["kubernetes.io"]
    rest = f"https://127.0.0.1:{c.ports['rest']}"
    ca = str(c.data_dir / "pki" / "ca.crt")

    def curl(path: str, bearer: str) -> dict:
        out = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", ca, "-H", f"Authorization: Bearer {bearer}",
                              f"{rest}{path}"], capture_output=True, text=True, timeout=30)
        return json.loads(out.stdout)
    assert [p["metadata"]["name"] for p in curl("/api/v1/namespaces/team/pods", token)["items"]] == ["reader"]
    assert curl("/api/v1/namespaces/default/pods", token)["code"] == 403
    other = subprocess.run(["kubectl", "create", "token", "reader", "-n", "team", "--audience", "https://vault"],
                           env=c.env(), capture_output=True, text=True, timeout=60)
    assert other.returncode == 0 and curl("/api/v1/namespaces/team/pods", other.stdout.strip())["code"] == 401
    skiff_token = c.skiff("create", "token", "reader", "-n", "team")
    assert skiff_token.returncode == 0 and skiff_token.stdout.count(".") == 2, skiff_token.stderr
    assert c.skiff("delete", "serviceaccount", "reader", "-n", "team").returncode == 0
    assert curl("/api/v1/namespaces/team/pods", token)["code"] == 401


def test_a_pod_on_a_node_namespace_reaches_the_api_too(private_cluster):
    """`up --nodes`: the nodes are network namespaces, the control plane is on the lab link's host end
    (--advertise-address); a pod's flow to the `kubernetes` Service leaves its node masqueraded, even
    with pod egress fenced (`--pod-egress none`), and the API answers it as its account."""
    c = private_cluster
    base = _cached_base()
    name = f"skiffsa{c.tag[:2]}"
    up = subprocess.run(c.up_args("--detach", "--secure", "--nodes", "1", "--name", name,
                                  "--node-cidr", f"10.217.{int(c.tag[:2], 16)}.0/24"),
                        env=c.env(), capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    loaded = c.skiff("image", "load", "--data-dir", str(c.data_dir), "-i", str(base), timeout=600)
    assert loaded.returncode == 0, loaded.stderr
    assert subprocess.run(["kubectl", "create", "namespace", "team"], env=c.env(), capture_output=True,
                          timeout=60).returncode == 0
    assert c.skiff("create", "serviceaccount", "reader", "-n", "team").returncode == 0
    (c.base / "pod.yaml").write_text(POD)
    applied = c.skiff("apply", "-f", str(c.base / "pod.yaml"))
    assert applied.returncode == 0, applied.stderr
    first = wait_for("the pod's first answer", lambda: _answers(c), timeout=180)
    assert first[0].startswith('403 pods is forbidden: User "system:serviceaccount:team:reader"'), first
