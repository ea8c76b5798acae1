"""Joining a node as kubeadm does (issue 12, decision 36), driven as a user would on a
`skiff up --secure --nodes 1` cluster: `skiff token create --print-join-command` on the control
plane, the printed line run on a fresh machine (a new namespace node on the cluster's private
link), its agent started with the files `join` wrote, a pod running there, its certificate
rotated (a 3-minute signing duration) with the pod kept running; and each refusal of the
issue's "Bad input" (unknown, expired or wrong-secret token, wrong CA hash, a node's CSR for
another node's name) with one clear line and nothing half-joined.

Root and the real kernel; no packet leaves the machine (the link is a bridge inside a namespace
the cluster creates). systemd is not PID 1 here: `join --no-start` writes the files, the test
runs the agent the way the unit would.
"""
from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import shlex
import socket
import ssl
import subprocess
import sys
import time

import pytest
from cryptography import x509

from skiff import pki
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.etcd, pytest.mark.slow]

POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
"""


def _env_file(path) -> dict[str, str]:
    return {k: shlex.split(v)[0] if v else "" for k, _, v in
            (line.partition("=") for line in path.read_text().splitlines() if "=" in line)}


def _served_certificate(address: str, port: int, files: pki.ClusterPki) -> bytes:
    """The certificate the agent's service presents (the control plane's client certificate offered)."""
    ctx = ssl.create_default_context(cafile=str(files.ca_file))
    ctx.check_hostname = False
    ctx.load_cert_chain(files.cert_file("controlplane"), files.key_file("controlplane"))
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((address, port), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
        return ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True)).encode()


async def _csr_for_another_node(api: str, files: pki.ClusterPki, node: str) -> str:
    """As node `node` (its certificate), ask for system:node:intruder; the denial's message."""
    from proto.skiff.v1 import certificates_pb2
    from skiff import csr as csrs
    from skiff.client import ApiClient
    _, request = csrs.node_key_and_request("intruder")
    obj = certificates_pb2.CertificateSigningRequest(api_version="certificates.k8s.io/v1",
                                                     kind="CertificateSigningRequest")
    obj.metadata.name = "steal"
    obj.spec.request, obj.spec.signer_name = request, csrs.KUBELET_CLIENT_SIGNER
    obj.spec.usages[:] = ["digital signature", "client auth"]
    async with ApiClient(api, credentials=files.credentials(f"node-{node}")) as client:
        await client.create(obj)
        for _ in range(120):
            got = await client.get("CertificateSigningRequest", "steal", "")
            denied = [c for c in got.status.conditions if c.type == "Denied"]
            if denied:
                assert not got.status.certificate
                return denied[0].message
            await asyncio.sleep(0.5)
    raise AssertionError("the CSR for another node's name was never denied")


def _csr_manifest(name: str, node: str) -> str:
    import base64

    from skiff import csr as csrs
    _, request = csrs.node_key_and_request(node)
    return json.dumps({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                       "metadata": {"name": name},
                       "spec": {"request": base64.b64encode(request).decode(), "signerName": csrs.KUBELET_CLIENT_SIGNER,
                                "usages": ["digital signature", "client auth"]}})


# Its own timeout: ~2.5 min on a quiet machine (a cluster up, a rotation, a purge); a busy one overran 300 s.
@pytest.mark.timeout(900)
def test_a_machine_joins_with_the_printed_line_and_rotates_its_certificate(private_cluster):
    from skiff.cli._cluster import (ClusterConfig, load_config, node_agent, node_data_dir, save_config,
                                    start_component)
    from skiff.cli._lab import ensure_node

    c = private_cluster
    name = f"skiff{c.tag[:4]}"
    node_cidr = f"10.213.{int(c.tag[:2], 16)}.0/24"
    host_ip = str(ipaddress.ip_network(node_cidr)[1])
    # The REST door on the link's host address, where a machine on the link reaches it; node
    # certificates from CSRs live 3 minutes, so the joined node renews its own within the test.
    env = {**c.env(), "SKIFF_REST_LISTEN": f"{host_ip}:{c.ports['rest']}", "SKIFF_CLUSTER_SIGNING_DURATION": "3m"}

    def skiff(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "skiff.cli.main", *args], cwd=c.base, env=env,
                              capture_output=True, text=True, timeout=timeout, **kw)

    up = subprocess.run(c.up_args("--secure", "--detach", "--nodes", "1", "--name", name, "--node-cidr", node_cidr),
                        env=env, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    files = pki.ClusterPki(c.data_dir / "pki")
    config = load_config(ClusterConfig(data_dir=c.data_dir.absolute(), run_dir=c.run_dir, node_name=""))
    first = config.lab.node(1).name
    fresh = config.lab.node(2)          # a machine that is not part of the cluster yet
    ensure_node(fresh)
    data = node_data_dir(config, fresh)
    env_file = c.base / "joined-env"

    def join(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", fresh.netns, sys.executable, "-m", "skiff.cli.main", "join",
                               *args, "--node-name", fresh.name, "--data-dir", str(data), "--env-file",
                               str(env_file), "--no-start", "--timeout", "60"],
                              cwd=c.base, env=env, capture_output=True, text=True, timeout=180)

    def nothing_joined() -> None:
        assert not (data / "pki").exists() and not env_file.exists()
        assert fresh.name not in skiff("get", "nodes", "-o", "name").stdout

    # The token and the line, as kubeadm prints them; `token list` shows it in kubeadm's columns.
    created = skiff("token", "create", "--print-join-command", "--description", "e2e")
    assert created.returncode == 0, created.stderr
    line = shlex.split(created.stdout.strip())
    assert line[:2] == ["skiff", "join"] and line[2] == f"{host_ip}:{c.ports['rest']}", line
    token, pinned = line[line.index("--token") + 1], line[line.index("--discovery-token-ca-cert-hash") + 1]
    assert pinned == pki.ca_cert_hash(files.ca_file.read_bytes())
    listed = skiff("token", "list").stdout.splitlines()
    assert listed[0].split() == ["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA", "GROUPS"]
    assert listed[1].split()[0] == token and "authentication,signing" in listed[1] and " e2e " in listed[1]

    # Bad input: each refused in one line, nothing written, no Node.
    token_id = token.partition(".")[0]
    unknown = join(line[2], "--token", "zzzzzz.0123456789abcdef", "--discovery-token-ca-cert-hash", pinned)
    assert unknown.returncode == 1 and unknown.stderr.startswith(
        'error: token id "zzzzzz" is invalid for this cluster or it has expired'), unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    wrong_secret = join(line[2], "--token", f"{token_id}.0000000000000000", "--discovery-token-ca-cert-hash", pinned)
    assert wrong_secret.returncode == 1 and "does not verify: the token's secret is wrong" in wrong_secret.stderr
    wrong_hash = "sha256:" + "0" * 64
    pinned_wrong = join(line[2], "--token", token, "--discovery-token-ca-cert-hash", wrong_hash)
    assert pinned_wrong.returncode == 1
    assert pinned_wrong.stderr.strip() == (f"error: the cluster CA's public key hash is {pinned}, not the pinned "
                                           f"{wrong_hash} (--discovery-token-ca-cert-hash): refusing to join")
    short = skiff("token", "create", "--ttl", "2s", "--print-join-command")
    assert short.returncode == 0, short.stderr
    short_token = shlex.split(short.stdout)[shlex.split(short.stdout).index("--token") + 1]
    time.sleep(3)
    expired = join(line[2], "--token", short_token, "--discovery-token-ca-cert-hash", pinned)
    assert expired.returncode == 1 and "is invalid for this cluster or it has expired" in expired.stderr, \
        expired.stderr
    wait_for("the token cleaner deletes the expired token",
             lambda: short_token not in skiff("token", "list").stdout, timeout=60)
    nothing_joined()
    # A node's certificate asking for another node's name: denied, with the reason.
    message = asyncio.run(_csr_for_another_node(config.api_address, files, first))
    assert message == f"node '{first}' may renew only its own certificate; the request asks for 'system:node:intruder'"
    csrs = skiff("get", "csr", "steal")
    assert csrs.stdout.split()[-1] == "Denied" and f"system:node:{first}" in csrs.stdout, csrs.stdout
    # A request nobody approves automatically (the admin's) waits for a person: kubectl's approve issues it,
    # skiff's deny refuses another; kubectl's columns.
    for name in ("manual", "refused"):
        manifest = _csr_manifest(name, f"{name}-node")
        made = subprocess.run(["kubectl", "create", "-f", "-"], input=manifest, env=env, capture_output=True,
                              text=True, timeout=60)
        assert made.returncode == 0, made.stderr
    approved = subprocess.run(["kubectl", "certificate", "approve", "manual"], env=env, capture_output=True,
                              text=True, timeout=60)
    assert approved.stdout.strip() == "certificatesigningrequest.certificates.k8s.io/manual approved", \
        approved.stdout + approved.stderr
    denied = skiff("certificate", "deny", "refused")
    assert denied.stdout.strip() == "certificatesigningrequest.certificates.k8s.io/refused denied", denied.stderr
    wait_for("the approved request issued", lambda: skiff("get", "csr", "manual").stdout.split()[-1]
             == "Approved,Issued", timeout=60)
    table = skiff("get", "csr").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    assert [r.split()[-1] for r in table if r.startswith("refused ")] == ["Denied"]

    # The printed line, on the fresh machine: key, CSR, certificate, the agent's settings.
    joined = join(*line[2:])
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert f"This node has joined the cluster as {fresh.name}" in joined.stdout
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in (data / "pki").iterdir()} == {
        "ca.crt": "0o600", "node.key": "0o600", "node.csr": "0o600", "node.crt": "0o600"}
    issued = (data / "pki" / "node.crt").read_bytes()
    assert pki.identity_of(x509.load_pem_x509_certificate(issued)) == \
        pki.Identity(f"system:node:{fresh.name}", ("system:nodes",))
    settings = _env_file(env_file)
    assert settings["SKIFF_SERVER"] == config.api_address and settings["SKIFF_NODE_IP"] == fresh.ip
    requests = json.loads(skiff("get", "csr", "-o", "json").stdout)["items"]
    bootstrap = [r for r in requests if r["spec"]["username"] == f"system:bootstrap:{token_id}"]
    assert len(bootstrap) == 1 and bootstrap[0]["status"]["conditions"][0]["reason"] == "AutoApproved"

    # Its agent, run as the unit would with those settings (here with the lab's own flags too).
    grown = dataclasses.replace(config, nodes=(*config.nodes, fresh.index))
    base = node_agent(grown, fresh)
    argv = [*base.argv[:base.argv.index("--client-ca-file")], *shlex.split(settings["SKIFF_AGENT_ARGS"])]
    assert "--rotate-certificates" in argv
    start_component(grown, dataclasses.replace(base, argv=tuple(argv)))
    save_config(grown)   # `down --purge` removes it with the others

    def ready():
        nodes = json.loads(skiff("get", "nodes", "-o", "json").stdout or "{}").get("items", [])
        return any(n["metadata"]["name"] == fresh.name and any(
            x["type"] == "Ready" and x["status"] == "True"
            # A Node is created before its first status: no conditions yet (omitted from the JSON).
            for x in n.get("status", {}).get("conditions", [])) for n in nodes)
    wait_for(f"{fresh.name} Ready", ready)
    (c.base / "pod.yaml").write_text(POD.format(name="on-joined", node=fresh.name))
    assert skiff("apply", "-f", str(c.base / "pod.yaml")).returncode == 0

    def running(pod: str):
        out = json.loads(skiff("get", "pod", pod, "-o", "json").stdout or "{}")
        return out if out.get("status", {}).get("phase") == "Running" else None
    before = running("on-joined") or wait_for("the pod on the joined node Running", lambda: running("on-joined"))
    started = before["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]

    # Rotation: a renewed certificate through the node's own CSR, swapped in with the pod untouched.
    renewed = wait_for("the joined node renews its certificate",
                       lambda: (data / "pki" / "node.crt").read_bytes() != issued
                       and (data / "pki" / "node.crt").read_bytes(), timeout=300)
    requests = json.loads(skiff("get", "csr", "-o", "json").stdout)["items"]
    own = [r for r in requests if r["spec"]["username"] == f"system:node:{fresh.name}"]
    assert own and all(r["status"]["conditions"][0]["reason"] == "AutoApproved" for r in own)
    assert pki.identity_of(x509.load_pem_x509_certificate(renewed)).user == f"system:node:{fresh.name}"
    # (compared with the file at each look: with a 3-minute lifetime a further renewal may come meanwhile)
    wait_for("the agent's service presents the renewed certificate",
             lambda: _served_certificate(fresh.ip, config.agent_port, files) == (data / "pki" / "node.crt").read_bytes(),
             timeout=60)
    after = running("on-joined")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    status = after["status"]["containerStatuses"][0]
    assert status["restartCount"] == 0 and status["state"]["running"]["startedAt"] == started
    exec_ = skiff("exec", "on-joined", "--", "echo", "still here")
    assert exec_.returncode == 0 and exec_.stdout == "still here\n", exec_.stderr
    (c.base / "pod2.yaml").write_text(POD.format(name="after-rotation", node=fresh.name))
    assert skiff("apply", "-f", str(c.base / "pod2.yaml")).returncode == 0
    wait_for("a pod started after the rotation Running", lambda: running("after-rotation"))
    assert ready()

    down = skiff("down", "--data-dir", str(c.data_dir), "--run-dir", str(c.run_dir), "--purge",
                 "--grace-period", "1", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert fresh.name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
