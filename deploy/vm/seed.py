"""The host's side of deploy/vm/cluster.sh: the cluster's PKI and each VM's seed.

    python deploy/vm/seed.py STATE_DIR --nodes 3 --subnet 10.77.0

writes, under STATE_DIR:

    pki/                  the cluster CA and its certificates (skiff.pki, as `skiff up --secure` lays
                          them out): the API's serving certificate for node1's address, etcd's,
                          the control plane's, the admin's and node1's node certificate
    config                the host's client config (SKIFF_CONFIG): node1's API, the CA, the admin
    seed/nodeN/           what VM N reads on every boot from its seed disk (/dev/vdb):
        node.env          NODE, IP, PREFIX, ROLE (control-plane or node), SERVER; a node's JOIN_*
        pki/              node1: the CA (with its key: the CSR signer runs there), its node
                          certificate and the control plane's files (CONTROL_PLANE_FILES)

The join step is `join_material`: node1 (the control-plane machine, as on kubeadm's `init`
one) gets its certificates from the CA here; every other VM joins on its first boot with
`skiff join SERVER --token T --discovery-token-ca-cert-hash sha256:...` (decision 36), the
line `skiff token create --print-join-command` prints. The token is chosen here, so every VM
boots at once; cluster.sh creates it (`skiff token create TOKEN`) once node1's API answers,
and the VMs' `skiff join` retries until then. STATE_DIR/join-token holds it.
"""
from __future__ import annotations

import argparse
import secrets
import shutil
import string
from pathlib import Path

from skiff.config import ClientConfig, write_config
from skiff.pki import ClusterPki, ca_cert_hash

SERVICE_CIDR = "10.96.0.0/16"
FIRST_SERVICE_IP = "10.96.0.1"
CLUSTER_CIDR = "10.244.0.0/16"
API_PORT = 6443
REST_PORT = 6444        # the REST door, where `skiff join` discovers the cluster


def node_name(i: int) -> str:
    return f"node{i}"


def node_ip(subnet: str, i: int) -> str:
    return f"{subnet}.{10 + i}"


def _copy_private(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    dst.chmod(0o600)


def join_material(pki: ClusterPki, *, token: str, server_ip: str) -> str:
    """node.env lines of a VM that joins: the join line's server, token and CA hash."""
    return (f"JOIN_SERVER={server_ip}:{REST_PORT}\nJOIN_TOKEN={token}\n"
            f"JOIN_CA_HASH={ca_cert_hash(pki.ca_file.read_bytes())}\n")


# The control-plane VM's share of the PKI, named (not the directory's listing: a client
# certificate issued on the host later, or the admin's key, stays on the host). The CA's key
# is here because the CSR signer runs there; etcd's CA signs nothing at run time, so only its
# certificate goes.
CONTROL_PLANE_FILES = (
    "ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "controlplane.crt", "controlplane.key",
    "apiserver-etcd-client.crt", "apiserver-etcd-client.key", "tokens.csv", "encryption.key",
    "etcd/ca.crt", "etcd/server.crt", "etcd/server.key")


def new_token() -> str:
    """A bootstrap token, [a-z0-9]{6}.[a-z0-9]{16} (skiff/bootstraptoken.py)."""
    alphabet = string.ascii_lowercase + string.digits
    return ".".join("".join(secrets.choice(alphabet) for _ in range(n)) for n in (6, 16))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("state", type=Path)
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--subnet", default="10.77.0", help="the VMs' /24, as its first three octets")
    args = p.parse_args()
    server_ip = node_ip(args.subnet, 1)
    server = f"{server_ip}:{API_PORT}"
    pki = ClusterPki(args.state / "pki")
    pki.ensure_cluster(api_addresses=[server_ip], service_cluster_ip=FIRST_SERVICE_IP, hostname=node_name(1))
    write_config(path=args.state / "config", config=ClientConfig(
        server=server, certificate_authority=str(pki.ca_file),
        client_certificate=str(pki.cert_file("admin")), client_key=str(pki.key_file("admin"))))
    token = new_token()
    (args.state / "join-token").write_text(token + "\n")
    (args.state / "join-token").chmod(0o600)
    for i in range(1, args.nodes + 1):
        node, ip = node_name(i), node_ip(args.subnet, i)
        seed = args.state / "seed" / node
        if seed.exists():
            shutil.rmtree(seed)
        (seed / "pki").mkdir(parents=True, mode=0o700)
        role = "control-plane" if i == 1 else "node"
        (seed / "node.env").write_text(
            f"NODE={node}\nIP={ip}\nPREFIX=24\nROLE={role}\nSERVER={server}\n"
            f"CLUSTER_CIDR={CLUSTER_CIDR}\nSERVICE_CIDR={SERVICE_CIDR}\n")
        if i > 1:
            with (seed / "node.env").open("a") as env:
                env.write(join_material(pki, token=token, server_ip=server_ip))
            continue
        _copy_private(pki.ca_file, seed / "pki" / "ca.crt")
        pki.ensure_node(pki.ensure_ca(), node, address=ip)
        for name in (f"node-{node}",):
            _copy_private(pki.cert_file(name), seed / "pki" / f"{name}.crt")
            _copy_private(pki.key_file(name), seed / "pki" / f"{name}.key")
        if i == 1:   # the control-plane machine: what its etcd and control plane read, and no more
            (seed / "pki" / "etcd").mkdir(mode=0o700)
            for name in CONTROL_PLANE_FILES:
                _copy_private(pki.directory / name, seed / "pki" / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
