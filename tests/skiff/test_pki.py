"""The cluster CA and its certificates (skiff/pki.py): what is issued, to whom, and how it is kept."""
from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from skiff import pki


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data") / "pki"
    files = pki.ClusterPki(directory)
    files.ensure_cluster(api_addresses=["10.213.0.1"], service_cluster_ip="10.96.0.1", node_names=["n1"],
                         node_addresses={"n1": "10.213.0.2"}, hostname="box")
    return files


def _cert(files: pki.ClusterPki, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(files.cert_file(name).read_bytes())


def test_every_certificate_is_signed_by_the_cluster_ca(cluster):
    ca = x509.load_pem_x509_certificate(cluster.ca_file.read_bytes())
    for name in ("apiserver", "admin", "controlplane", "node-n1"):
        _cert(cluster, name).verify_directly_issued_by(ca)


def test_etcd_has_a_ca_of_its_own_trusting_only_the_control_plane(cluster):
    """etcd trusts etcd/ca.crt, which signs only etcd's server and the control plane's etcd
    client: a node's or the admin's certificate (the cluster CA's) opens nothing there."""
    etcd_ca = x509.load_pem_x509_certificate(cluster.etcd_ca_file.read_bytes())
    assert etcd_ca.subject != x509.load_pem_x509_certificate(cluster.ca_file.read_bytes()).subject
    for name in (cluster.ETCD_SERVER, cluster.ETCD_CLIENT):
        _cert(cluster, name).verify_directly_issued_by(etcd_ca)
    for name in ("admin", "controlplane", "node-n1"):
        with pytest.raises((ValueError, InvalidSignature)):
            _cert(cluster, name).verify_directly_issued_by(etcd_ca)
    assert cluster.etcd_credentials().ca == cluster.etcd_ca_file.read_bytes()


def test_the_api_serving_certificate_names_every_address_a_client_uses(cluster):
    sans = _cert(cluster, "apiserver").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"box", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"} <= set(sans.get_values_for_type(x509.DNSName))
    assert {"127.0.0.1", "10.213.0.1", "10.96.0.1"} <= {str(a) for a in sans.get_values_for_type(x509.IPAddress)}


def test_client_certificates_carry_user_and_groups(cluster):
    assert pki.identity_of(_cert(cluster, "admin")) == pki.Identity("admin", ("system:masters",))
    assert pki.identity_of(_cert(cluster, "node-n1")) == pki.Identity("system:node:n1", ("system:nodes",))
    usage = _cert(cluster, "admin").extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_keys_and_certificates_are_private(cluster):
    for directory in (cluster.directory, cluster.etcd_ca_file.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        for path in directory.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


def test_a_second_ensure_keeps_the_ca_and_certificates(cluster):
    before = cluster.ca_file.read_bytes(), cluster.cert_file("admin").read_bytes()
    cluster.ensure_cluster(api_addresses=[], service_cluster_ip="10.96.0.1")
    assert (cluster.ca_file.read_bytes(), cluster.cert_file("admin").read_bytes()) == before


def test_user_certificates_and_tokens(cluster):
    alice = cluster.issue_user("alice", user="alice", groups=["dev"])
    assert pki.identity_of(x509.load_pem_x509_certificate(alice.cert)) == pki.Identity("alice", ("dev",))
    token = cluster.add_token(user="bob", groups=["a", "b"])
    assert pki.read_token_file(cluster.token_file)[token] == pki.Identity("bob", ("a", "b"))


def test_a_malformed_token_file_names_the_line(tmp_path):
    path = tmp_path / "tokens.csv"
    path.write_text("abc,alice,1\nonlytoken\n")
    with pytest.raises(pki.PkiError, match=r"tokens.csv:2: expected token,user,uid"):
        pki.read_token_file(path)


def test_fingerprint_and_ca_hash_formats(cluster):
    pem = cluster.ca_file.read_bytes()
    assert len(pki.fingerprint(pem).split(":")) == 32
    assert pki.ca_cert_hash(pem).startswith("sha256:") and len(pki.ca_cert_hash(pem)) == 71
