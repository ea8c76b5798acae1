"""`skiff join SERVER --token T --discovery-token-ca-cert-hash sha256:<hex>`:
make this machine a node of a secure cluster, as `kubeadm join` (decision 36).

    discovery    GET https://SERVER/api/v1/namespaces/kube-public/configmaps/cluster-info
                 without trusting anything yet; its kubeconfig must carry a JWS by the
                 token's id that verifies with the token (so it came from someone who
                 knows the token), and the CA in it must hash (sha256 of its
                 SubjectPublicKeyInfo) to the pinned value; then read again over TLS
                 verified by that CA.
    TLS bootstrap  a new EC key and a CSR for system:node:NAME (signer
                 kubernetes.io/kube-apiserver-client-kubelet), sent with the token
                 as bearer credential; wait until it is issued (auto-approved for a
                 valid token; else `skiff certificate approve`), or denied.
    install      DATA/pki/{ca.crt,node.key,node.crt,node.csr} (0600), the agent's
                 settings in /etc/default/skiff (SKIFF_SERVER, SKIFF_NODE_IP,
                 SKIFF_AGENT_ARGS with the certificate flags), the unit
                 deploy/systemd/skiff-agent.service, `systemctl enable --now`.

Nothing is written before the certificate is issued, and a failure after that
removes what was written: a failed join leaves no unit, no key and (the agent
never ran) no Node. `--no-start` (or SKIFF_JOIN_NO_SYSTEMD=1, for machines
without systemd as PID 1) writes the files and prints the agent's command
instead of installing the unit.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from skiff import bootstraptoken as bt
from skiff.cli._common import CliError

NO_SYSTEMD_ENV = "SKIFF_JOIN_NO_SYSTEMD"
UNIT = "skiff-agent.service"
_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
NODE_USAGES = ["digital signature", "key encipherment", "client auth", "server auth"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("join", help="join this machine to a secure cluster as a node (kubeadm join)")
    p.add_argument("server", metavar="SERVER", help="the API's address HOST:PORT (as `skiff token create "
                                                    "--print-join-command` prints it)")
    p.add_argument("--token", required=True, help="a bootstrap token, [a-z0-9]{6}.[a-z0-9]{16}")
    p.add_argument("--discovery-token-ca-cert-hash", required=True, metavar="sha256:HEX",
                   help="the cluster CA's public key hash: the CA is trusted only if it matches")
    p.add_argument("--node-name", default="", help="this node's name (default: the host name)")
    p.add_argument("--node-ip", default="", help="this node's address (default: the one that reaches SERVER)")
    p.add_argument("--data-dir", default="/var/lib/skiff", help="the agent's data dir (certificates in DATA/pki)")
    p.add_argument("--env-file", default="/etc/default/skiff", help="the agent unit's settings")
    p.add_argument("--unit-dir", default="/etc/systemd/system", help="where the agent's unit is installed")
    p.add_argument("--no-start", action="store_true", default=os.environ.get(NO_SYSTEMD_ENV, "") not in ("", "0"),
                   help=f"write the files, do not install or start the unit (also ${NO_SYSTEMD_ENV}=1)")
    p.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                   help="how long to wait for the certificate (default %(default)g)")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Joined:
    api_server: str    # the gRPC API the agent dials
    ca: bytes
    cert: bytes
    key: bytes
    request: bytes


# ------------------------------------------------------------ HTTPS to the REST door

def _context(ca_pem: bytes | None) -> ssl.SSLContext:
    if ca_pem is None:   # discovery's first read: nothing trusted yet, the JWS and the pin decide
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cadata=ca_pem.decode())


def _call(method: str, url: str, *, ca_pem: bytes | None, token: str = "", body: dict | None = None) -> dict:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30, context=_context(ca_pem)) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message", "")
        except (ValueError, AttributeError):
            message = ""
        raise _HttpError(exc.code, message or exc.reason) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError(f"cannot reach {url.split('/api')[0]}: {reason}") from None


class _HttpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code, self.message = code, message


# ------------------------------------------------------------ the steps

def discover(server: str, token: str, pinned: str) -> bt.ClusterInfo:
    token_id, secret = bt.split(token)
    path = f"/api/v1/namespaces/{bt.CLUSTER_INFO_NAMESPACE}/configmaps/{bt.CLUSTER_INFO}"
    try:
        info = _call("GET", f"https://{server}{path}", ca_pem=None)
    except _HttpError as exc:
        raise CliError(f"cannot read the cluster-info ConfigMap from {server}: {exc}") from None
    data = info.get("data") or {}
    kubeconfig, signature = data.get("kubeconfig", ""), data.get(bt.JWS_PREFIX + token_id)
    if not kubeconfig:
        raise CliError(f"the cluster-info ConfigMap at {server} has no kubeconfig")
    if signature is None:
        raise CliError(f'token id "{token_id}" is invalid for this cluster or it has expired: the cluster-info '
                       'ConfigMap carries no signature for it (create a new one with `skiff token create`)')
    if not bt.verify_signature(kubeconfig, signature, token_id, secret):
        raise CliError(f'the cluster-info signature for token id "{token_id}" does not verify: the token\'s '
                       'secret is wrong')
    parsed = bt.parse_cluster_info_kubeconfig(kubeconfig)
    from skiff.pki import ca_cert_hash
    found = ca_cert_hash(parsed.ca_pem)
    if found != pinned:
        raise CliError(f"the cluster CA's public key hash is {found}, not the pinned {pinned} "
                       "(--discovery-token-ca-cert-hash): refusing to join")
    try:   # again, now over TLS verified by the pinned CA: the server holds a certificate of it
        _call("GET", f"https://{server}{path}", ca_pem=parsed.ca_pem)
    except _HttpError as exc:
        raise CliError(f"cannot read cluster-info from {server} over TLS with the cluster CA: {exc}") from None
    except CliError as exc:
        raise CliError(f"{exc} (the server's certificate is not of the pinned CA?)") from None
    return parsed


def request_certificate(server: str, info: bt.ClusterInfo, token: str, node: str, node_ip: str,
                        timeout: float) -> tuple[bytes, bytes, bytes]:
    """(key, CSR, certificate) PEMs once the cluster issued it; CliError when refused or not in time."""
    from skiff import csr as csrs
    key, request = csrs.node_key_and_request(node, dns_names=[node], ip_addresses=["127.0.0.1", node_ip])
    name = f"node-csr-{secrets.token_hex(8)}"
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"request": base64.b64encode(request).decode(), "signerName": KUBELET_CLIENT_SIGNER,
                     "usages": NODE_USAGES}}
    base = f"https://{server}/apis/certificates.k8s.io/v1/certificatesigningrequests"
    try:
        _call("POST", base, ca_pem=info.ca_pem, token=token, body=body)
    except _HttpError as exc:
        token_id = token.partition(".")[0]
        if exc.code == 401:   # expired (or deleted) since discovery read its signature
            raise CliError(f'token id "{token_id}" is invalid for this cluster or it has expired: the API refused '
                           'it (create a new one with `skiff token create`)') from None
        raise CliError(f"cannot send the certificate signing request: {exc}") from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = _call("GET", f"{base}/{name}", ca_pem=info.ca_pem, token=token)
        except _HttpError as exc:
            raise CliError(f"cannot read the certificate signing request {name}: {exc}") from None
        status = got.get("status") or {}
        for c in status.get("conditions") or []:
            if c.get("type") in ("Denied", "Failed") and c.get("status") == "True":
                raise CliError(f"the certificate signing request {name} was {c['type'].lower()}: "
                               f"{c.get('message') or c.get('reason', '')}")
        if status.get("certificate"):
            return key, request, base64.b64decode(status["certificate"])
        if time.monotonic() > deadline:
            raise CliError(f"the certificate signing request {name} was not issued within {timeout:g}s; "
                           f"approve it with `skiff certificate approve {name}`")
        time.sleep(0.5)


def _node_ip(server: str) -> str:
    """The local address a packet to SERVER would leave from (a UDP connect sends nothing)."""
    host = server.rpartition(":")[0].strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))
        return s.getsockname()[0]


def _api_server(info: bt.ClusterInfo, server: str) -> str:
    """The gRPC API the agent dials: cluster-info's, its host replaced by SERVER's when it is a wildcard."""
    if not info.api_server:
        raise CliError("the cluster-info kubeconfig names no API server for the agent (skiff.dev/api-server)")
    host, _, port = info.api_server.rpartition(":")
    if host.strip("[]") in ("0.0.0.0", "::", ""):
        host = server.rpartition(":")[0]
    return f"{host}:{port}"


# ------------------------------------------------------------ install

def _write_private(path: Path, data: bytes, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    written.append(path)


def agent_args(pki_dir: Path, node: str) -> list[str]:
    args = ["--client-ca-file", str(pki_dir / "ca.crt"), "--tls-cert-file", str(pki_dir / "node.crt"),
            "--tls-private-key-file", str(pki_dir / "node.key"), "--rotate-certificates"]
    if node != socket.gethostname().lower():   # the unit names the node %H
        args += ["--node-name", node]
    return args


def _env_text(old: str, settings: dict[str, str]) -> str:
    kept = [line for line in old.splitlines() if line.partition("=")[0].strip() not in settings]
    return "\n".join([*kept, *(f"{k}={shlex.quote(v)}" for k, v in settings.items())]) + "\n"


def _unit_source() -> Path:
    import skiff
    return Path(skiff.__file__).resolve().parent.parent / "deploy" / "systemd" / UNIT


def install(args: argparse.Namespace, joined: Joined, node: str, node_ip: str) -> list[str]:
    """Write the files (and the unit); on any failure remove what was written. The agent's command line."""
    pki_dir = Path(args.data_dir) / "pki"
    env_file, unit = Path(args.env_file), Path(args.unit_dir) / UNIT
    written: list[Path] = []
    old_env = env_file.read_text() if env_file.exists() else None
    flags = agent_args(pki_dir, node)
    try:
        _write_private(pki_dir / "ca.crt", joined.ca, written)
        _write_private(pki_dir / "node.key", joined.key, written)
        _write_private(pki_dir / "node.csr", joined.request, written)
        _write_private(pki_dir / "node.crt", joined.cert, written)
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.write_text(_env_text(old_env or "", {"SKIFF_SERVER": joined.api_server, "SKIFF_NODE_IP": node_ip,
                                                      "SKIFF_AGENT_ARGS": " ".join(flags)}))
        if not args.no_start:
            source = _unit_source()
            if not source.exists():
                raise CliError(f"the agent's unit {source} is missing from this installation")
            unit.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, unit)
            written.append(unit)
            for command in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", UNIT]):
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    raise CliError(f"{' '.join(command)} failed: {(done.stderr or done.stdout).strip()}")
    except BaseException:
        if not args.no_start and unit in written:
            subprocess.run(["systemctl", "disable", "--now", UNIT], capture_output=True)
        for path in reversed(written):
            path.unlink(missing_ok=True)
        if old_env is None:
            env_file.unlink(missing_ok=True)
        else:
            env_file.write_text(old_env)
        if not args.no_start and unit in written:
            subprocess.run(["systemctl", "daemon-reload"], capture_output=True)
        raise
    return ["skiff-agent", "--server", joined.api_server, "--node-name", node, "--node-ip", node_ip, *flags]


def run(args: argparse.Namespace) -> int:
    try:
        bt.split(args.token)
    except bt.TokenError as exc:
        raise CliError(f"--token: {exc}") from None
    pinned = args.discovery_token_ca_cert_hash.strip().lower()
    if not _HASH_RE.match(pinned):
        raise CliError(f'--discovery-token-ca-cert-hash "{args.discovery_token_ca_cert_hash}": expected '
                       '"sha256:" and 64 hex digits (skiff token create --print-join-command prints it)')
    server = args.server.removeprefix("https://").rstrip("/")
    node = args.node_name or socket.gethostname().lower()
    pki_dir = Path(args.data_dir) / "pki"
    if (pki_dir / "node.crt").exists():
        raise CliError(f"this machine has joined already ({pki_dir / 'node.crt'} exists); remove it to join again")
    info = discover(server, args.token, pinned)
    print(f"[discovery] the cluster CA at {server} matches the pinned hash {pinned}", flush=True)
    node_ip = args.node_ip or _node_ip(server)
    key, request, cert = request_certificate(server, info, args.token, node, node_ip, args.timeout)
    print(f"[tls-bootstrap] the cluster issued the certificate of system:node:{node}", flush=True)
    joined = Joined(api_server=_api_server(info, server), ca=info.ca_pem, cert=cert, key=key, request=request)
    command = install(args, joined, node, node_ip)
    if args.no_start:
        print(f"[agent] not started (--no-start); run:\n  {shlex.join(command)}")
    else:
        print(f"[agent] {UNIT} installed and started")
    print(f"\nThis node has joined the cluster as {node}: `skiff get nodes` on the control plane shows it.")
    return 0
