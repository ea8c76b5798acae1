"""deploy/vm/seed.py, the host's side of cluster.sh (no VM needed): node1, the control-plane
machine, gets exactly the files its etcd and control plane read — never the admin's key,
etcd's CA key or a client certificate issued on the host — each 0600; a joining VM gets no
key at all, only its join line (token and CA hash)."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from skiff.pki import ClusterPki, ca_cert_hash

ROOT = Path(__file__).resolve().parents[2]


def seed(state: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "deploy" / "vm" / "seed.py"), str(state), "--nodes", "2"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_node1_gets_the_control_planes_files_and_a_joining_vm_no_key(tmp_path):
    state = tmp_path / "state"
    ClusterPki(state / "pki").ensure_client("alice", user="alice")   # issued on the host before
    done = seed(state)
    assert done.returncode == 0, done.stderr
    pki = state / "seed" / "node1" / "pki"
    files = sorted(str(f.relative_to(pki)) for f in pki.rglob("*") if f.is_file())
    assert files == sorted([
        "ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "controlplane.crt", "controlplane.key",
        "apiserver-etcd-client.crt", "apiserver-etcd-client.key", "tokens.csv", "encryption.key",
        "etcd/ca.crt", "etcd/server.crt", "etcd/server.key", "node-node1.crt", "node-node1.key"])
    assert all(stat.S_IMODE((pki / f).stat().st_mode) == 0o600 for f in files)
    node2 = state / "seed" / "node2"
    assert not [f for f in (node2 / "pki").rglob("*")]
    env = dict(line.split("=", 1) for line in (node2 / "node.env").read_text().splitlines())
    assert env["JOIN_TOKEN"] == (state / "join-token").read_text().strip()
    assert env["JOIN_CA_HASH"] == ca_cert_hash((state / "pki" / "ca.crt").read_bytes())
    assert env["ROLE"] == "node" and env["JOIN_SERVER"] == "10.77.0.11:6444"
