"""A default `skiff up` is secure (decisions 32, 34), driven as a user would: the
admin works with skiff and kubectl; nothing else gets in - no credential, a local
user (`nobody`) without the keys (API gRPC and REST, the agent's port, etcd), a
user certificate without a grant, a certificate of another CA, a client that does
not know the cluster's CA; keys are 0600 and `down --purge` removes them and the
client config's context."""
from __future__ import annotations

import asyncio
import base64
import json
import stat
import subprocess
import sys

import pytest
import yaml

from skiff import pki

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.etcd, pytest.mark.slow]

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def _kubeconfig(path, *, server: str, credentials: pki.Credentials) -> str:
    from skiff import kubeconfig
    kubeconfig.write(path, server=server, credentials=credentials)
    return str(path)


def _curl(*args: str, nobody: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([*(AS_NOBODY if nobody else []), "curl", "-sS", "--max-time", "10", *args],
                          capture_output=True, text=True, timeout=30)


GRANT = """\
apiVersion: v1
kind: Namespace
metadata:
  name: team
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: alice-view
  namespace: team
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: view
subjects:
- kind: User
  name: alice
  apiGroup: rbac.authorization.k8s.io
"""


def _raw_etcd(port: int, key: bytes, files: pki.ClusterPki) -> bytes:
    from controlplane.store.etcdtls import TlsClient

    async def read() -> bytes:
        async with TlsClient(credentials=files.etcd_credentials(), host="127.0.0.1", port=port) as client:
            return (await client.get(key)).value
    return asyncio.run(read())


async def _as_node_and_at_agent(c, files: pki.ClusterPki) -> tuple[str, str]:
    import grpc

    from proto.skiff.v1 import api_pb2, api_pb2_grpc
    from skiff.client import ApiClient, ApiError
    async with ApiClient(c.api_address, credentials=files.credentials("node-skiff-test-node")) as node:
        try:
            await node.get("Secret", "db", "default")
            node_message = "read"
        except ApiError as exc:
            node_message = exc.message
    admin = files.credentials("admin")
    async with grpc.aio.secure_channel(f"127.0.0.1:{c.ports['agent']}", grpc.ssl_channel_credentials(
            root_certificates=admin.ca, private_key=admin.key, certificate_chain=admin.cert)) as channel:
        try:
            await api_pb2_grpc.AgentStub(channel).Stats(api_pb2.StatsRequest(node_name="skiff-test-node"), timeout=10)
            agent_message = "answered"
        except grpc.aio.AioRpcError as exc:
            agent_message = exc.details()
    return node_message, agent_message


def _skiff_with(c, config, *args: str) -> subprocess.CompletedProcess:
    """`skiff ARGS` with another client config than the one `up` wrote."""
    return subprocess.run([sys.executable, "-m", "skiff.cli.main", *args], cwd=c.base,
                          env={**c.env(), "SKIFF_CONFIG": str(config)}, capture_output=True, text=True, timeout=60)


def test_a_secure_cluster_answers_only_its_credentials(private_cluster):
    c = private_cluster
    # A bearer token in the static token file before the API starts (it reads the file at start, as Kubernetes).
    files = pki.ClusterPki(c.data_dir / "pki")
    files.ensure_ca()
    token = files.add_token(user="bob", groups=["system:masters"])
    # No flag: secure is the default.
    up = subprocess.run(c.up_args("--detach", "--no-bootstrap"), env=c.env(), capture_output=True,
                        text=True, timeout=240)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "cluster CA " in up.stdout and "SHA-256 fingerprint" in up.stdout
    rest = f"https://127.0.0.1:{c.ports['rest']}"

    # Keys and certificates: root's alone.
    for directory in (files.directory, files.etcd_ca_file.parent):   # etcd/: etcd's own CA
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert {stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir() if p.is_file()} == {0o600}

    # The admin: skiff through the client config `up` wrote, kubectl through the kubeconfig.
    nodes = c.skiff("get", "nodes")
    assert nodes.returncode == 0 and "skiff-test-node" in nodes.stdout, nodes.stderr
    kubectl = subprocess.run(["kubectl", "get", "nodes", "-o", "name"], env=c.env(), capture_output=True,
                             text=True, timeout=60)
    assert kubectl.returncode == 0 and "node/skiff-test-node" in kubectl.stdout, kubectl.stderr
    assert yaml.safe_load((c.base / "kubeconfig").read_text())["clusters"][0]["cluster"]["server"] == rest

    # No credential: REST 401 with Kubernetes' Status; gRPC without a certificate, nothing.
    anonymous = _curl("--cacert", str(files.ca_file), f"{rest}/api/v1/namespaces/default/pods")
    assert json.loads(anonymous.stdout) == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                            "status": "Failure", "message": "Unauthorized",
                                            "reason": "Unauthorized", "code": 401}
    with_token = _curl("--cacert", str(files.ca_file), "-H", f"Authorization: Bearer {token}",
                       f"{rest}/api/v1/nodes")
    assert json.loads(with_token.stdout)["items"][0]["metadata"]["name"] == "skiff-test-node"
    wrong_token = _curl("--cacert", str(files.ca_file), "-H", "Authorization: Bearer not-a-token", f"{rest}/api/v1/nodes")
    assert json.loads(wrong_token.stdout)["code"] == 401
    (c.base / "anonymous-config").write_text(f"server: {c.api_address}\n")
    plain = _skiff_with(c, c.base / "anonymous-config", "get", "pods")
    assert plain.returncode == 1 and plain.stderr.startswith("error: "), plain.stderr

    # A local user without the keys (uid nobody): cannot read them, nor reach the API or the agent's service.
    assert subprocess.run([*AS_NOBODY, "cat", str(files.key_file("admin"))], capture_output=True).returncode != 0
    assert json.loads(_curl("-k", f"{rest}/api/v1/pods", nobody=True).stdout)["code"] == 401
    for port in (c.ports["api"], c.ports["agent"]):
        refused = _curl("-k", "--http2", f"https://127.0.0.1:{port}/skiff.v1.Agent/Stats", nobody=True)
        assert refused.returncode != 0, f"port {port} answered a client without a certificate: {refused.stdout}"
    # etcd: TLS only, and only for a client certificate of the cluster CA (plain HTTP gets no answer either).
    every_key = ("-X", "POST", "-d", '{"key": "Lw==", "range_end": "AA=="}')
    etcd_range = f"127.0.0.1:{c.ports['etcd']}/v3/kv/range"
    refused = _curl("-k", *every_key, f"https://{etcd_range}", nobody=True)
    assert refused.returncode != 0, f"etcd answered a client without a certificate: {refused.stdout}"
    plain = _curl(*every_key, f"http://{etcd_range}", nobody=True)   # Go's TLS server: "400 Bad Request"
    assert '"kvs"' not in plain.stdout and '"header"' not in plain.stdout, plain.stdout
    # etcd trusts its own CA only: the cluster CA's certificates - the admin's, a node's - open nothing there.
    for other in ("admin", "node-skiff-test-node"):
        denied = _curl(*every_key, "--cacert", str(files.etcd_ca_file), "--cert", str(files.cert_file(other)),
                       "--key", str(files.key_file(other)), f"https://{etcd_range}")
        assert '"kvs"' not in denied.stdout and denied.returncode != 0, f"etcd answered {other}: {denied.stdout}"
    with_cert = _curl(*every_key, "--cacert", str(files.etcd_ca_file),
                      "--cert", str(files.cert_file(files.ETCD_CLIENT)), "--key", str(files.key_file(files.ETCD_CLIENT)),
                      f"https://{etcd_range}")
    assert '"kvs"' in with_cert.stdout, with_cert.stdout + with_cert.stderr   # the same request, the control plane's

    # A user the CA certified but nothing granted: Kubernetes' Forbidden, from kubectl.
    alice = files.issue_user("alice", user="alice", groups=["dev"])
    alice_config = _kubeconfig(c.base / "alice.kubeconfig", server=rest, credentials=alice)
    forbidden = subprocess.run(["kubectl", "--kubeconfig", alice_config, "get", "pods", "-n", "default"],
                               capture_output=True, text=True, timeout=60)
    assert forbidden.returncode == 1
    assert ('Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API '
            'group "" in the namespace "default"') in forbidden.stderr
    can_i = subprocess.run(["kubectl", "--kubeconfig", alice_config, "auth", "can-i", "list", "pods"],
                           capture_output=True, text=True, timeout=60)
    assert (can_i.returncode, can_i.stdout.strip()) == (1, "no")
    admin_can = subprocess.run(["kubectl", "auth", "can-i", "delete", "nodes"], env=c.env(), capture_output=True,
                               text=True, timeout=60)
    assert (admin_can.returncode, admin_can.stdout.strip()) == (0, "yes")

    # The admin grants alice `view` in one namespace: she lists pods there, and nowhere else.
    grant = subprocess.run(["kubectl", "apply", "-f", "-"], env=c.env(), capture_output=True, text=True, timeout=60,
                           input=GRANT)
    assert grant.returncode == 0, grant.stderr
    assert "rolebinding.rbac.authorization.k8s.io/alice-view created" in grant.stdout
    there = subprocess.run(["kubectl", "--kubeconfig", alice_config, "get", "pods", "-n", "team"],
                           capture_output=True, text=True, timeout=60)
    assert there.returncode == 0 and "No resources found in team namespace." in there.stderr, there.stderr
    elsewhere = subprocess.run(["kubectl", "--kubeconfig", alice_config, "get", "pods", "-n", "default"],
                               capture_output=True, text=True, timeout=60)
    assert elsewhere.returncode == 1 and 'cannot list resource "pods"' in elsewhere.stderr
    no_exec = subprocess.run(["kubectl", "--kubeconfig", alice_config, "auth", "can-i", "create", "pods/exec",
                              "-n", "team"], capture_output=True, text=True, timeout=60)
    assert no_exec.stdout.strip() == "no"
    # skiff's own can-i, asking (as the admin may) about alice.
    yes = c.skiff("auth", "can-i", "list", "pods", "-n", "team", "--as", "alice")
    assert (yes.returncode, yes.stdout) == (0, "yes\n"), yes.stderr
    no = c.skiff("auth", "can-i", "create", "pods", "--subresource", "exec", "-n", "team", "--as", "alice")
    assert (no.returncode, no.stdout) == (1, "no\n"), no.stderr

    # Secrets at rest: ciphertext in etcd (read with the control plane's certificate, as etcd demands).
    made = subprocess.run(["kubectl", "create", "secret", "generic", "db", "--from-literal=password=hunter2-e2e"],
                          env=c.env(), capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    stored = _raw_etcd(c.ports["etcd"], b"/skiff/secrets/default/db", files)
    assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:") and b"hunter2-e2e" not in stored
    shown = subprocess.run(["kubectl", "get", "secret", "db", "-o", "jsonpath={.data.password}"], env=c.env(),
                           capture_output=True, text=True, timeout=60)
    assert base64.b64decode(shown.stdout) == b"hunter2-e2e"

    # The node's certificate reads no Secret its pods do not use; the agent's service answers only
    # the control plane's certificate (the admin's is refused there too).
    node_forbidden, agent_refused = asyncio.run(_as_node_and_at_agent(c, files))
    assert node_forbidden == ('secrets "db" is forbidden: User "system:node:skiff-test-node" cannot get resource '
                              '"secrets" in API group "" in the namespace "default"')
    assert agent_refused.startswith("the agent's service answers only the control plane"), agent_refused

    # Another CA: its client certificate is refused; a client trusting it refuses the server, naming it.
    other = pki.ClusterPki(c.base / "other-pki")
    other.ensure_cluster(api_addresses=[], service_cluster_ip="10.96.0.1")
    stranger = pki.Credentials(ca=files.ca_file.read_bytes(), cert=other.cert_file("admin").read_bytes(),
                               key=other.key_file("admin").read_bytes())
    refused = subprocess.run(["kubectl", "--kubeconfig", _kubeconfig(c.base / "stranger", server=rest,
                                                                     credentials=stranger), "get", "pods"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and not refused.stdout, refused.stdout   # the TLS handshake fails
    (c.base / "wrong-ca-config").write_text(yaml.safe_dump({
        "server": c.api_address, "certificate-authority": str(other.ca_file),
        "client-certificate": str(other.cert_file("admin")), "client-key": str(other.key_file("admin"))}))
    wrong = _skiff_with(c, c.base / "wrong-ca-config", "get", "pods")
    server_print = pki.fingerprint(files.cert_file("apiserver").read_bytes())
    assert wrong.returncode == 1 and f"SHA-256 fingerprint {server_print}" in wrong.stderr, wrong.stderr

    down = c.skiff("down", "--purge", "--data-dir", str(c.data_dir), "--run-dir", str(c.run_dir), timeout=180)
    assert down.returncode == 0, down.stderr
    assert not files.directory.exists()
    # Its context named those keys: gone too (it was the only one, so the file goes).
    assert f"removed context skiff from {c.client_config}" in down.stdout
    assert not c.client_config.exists()
