"""The cluster's certificate authority and the certificates it issues (issue 12,
decision 32), as kubeadm lays out /etc/kubernetes/pki:

    DATA/pki/ca.crt, ca.key                 the cluster CA (10 years)
    DATA/pki/apiserver.crt/.key             the API's serving certificate (gRPC and REST)
    DATA/pki/admin.crt/.key                 CN admin, O system:masters: the CLI's and kubectl's
    DATA/pki/controlplane.crt/.key          CN system:skiff-controlplane, O system:masters: the control
                                            plane's own client (its controllers, the agents' service, etcd)
    DATA/pki/node-NAME.crt/.key             CN system:node:NAME, O system:nodes: an agent's client
                                            certificate, also its serving one (its addresses as SANs)
    DATA/pki/etcd/ca.crt, ca.key            etcd's own CA (kubeadm's etcd/ca): etcd trusts only what it signed
    DATA/pki/etcd/server.crt/.key           etcd's serving certificate (127.0.0.1), from etcd's CA
    DATA/pki/apiserver-etcd-client.crt/.key the control plane's client to etcd, from etcd's CA: the only
                                            certificate that reads or writes etcd
    DATA/pki/prometheus-etcd-client.crt/.key  Prometheus' client to etcd's /metrics (--monitoring)
    DATA/pki/tokens.csv                     the static bearer-token file (token,user,uid,"group1,group2")
    DATA/pki/encryption.key                 the key Secrets are encrypted with in etcd (name:base64 lines)

Every file is written 0600 in a 0700 directory through a temporary file and a
rename, so no reader ever sees half a key; key material is never logged (only
fingerprints are). `ensure_*` functions keep what exists: `skiff up --secure` a
second time reuses the CA, so kubeconfigs written before stay good.

`Credentials` is what a client or a server holds (CA, certificate, key, as PEM);
`fingerprint` is what the CLI names when a server's CA is not the one it knows.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 365
MASTERS = "system:masters"
NODES = "system:nodes"
CONTROLPLANE_USER = "system:skiff-controlplane"
ADMIN_USER = "admin"
API_SERVICE_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                     "kubernetes.default.svc.cluster.local")


class PkiError(Exception):
    """A certificate or key cannot be read or used; the message names the file."""


@dataclass(frozen=True)
class Credentials:
    """PEM bytes: the CA to trust, and this party's certificate and key (empty: none)."""
    ca: bytes
    cert: bytes = b""
    key: bytes = b""

    @classmethod
    def load(cls, *, ca: Path | str, cert: Path | str | None = None, key: Path | str | None = None
             ) -> "Credentials":
        def read(path: Path | str | None) -> bytes:
            if path is None:
                return b""
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise PkiError(f"cannot read {path}: {exc.strerror or exc}") from None
        return cls(ca=read(ca), cert=read(cert), key=read(key))


@dataclass(frozen=True)
class Identity:
    """Who a certificate names: user = CN, groups = O (Kubernetes' x509 authenticator)."""
    user: str
    groups: tuple[str, ...] = ()


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)   # whatever the umask
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str, groups: Iterable[str] = ()) -> x509.Name:
    return x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the DER certificate, as `openssl x509 -fingerprint -sha256` prints it (AA:BB:...)."""
    digest = hashlib.sha256(x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER))
    return ":".join(f"{b:02X}" for b in digest.digest())


def ca_cert_hash(cert_pem: bytes) -> str:
    """kubeadm's --discovery-token-ca-cert-hash: sha256 of the CA's SubjectPublicKeyInfo."""
    public = x509.load_pem_x509_certificate(cert_pem).public_key()
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def identity_of(cert: x509.Certificate) -> Identity:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    groups = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return Identity(user=str(cn[0].value) if cn else "", groups=tuple(str(g.value) for g in groups))


class CertificateAuthority:
    """A CA key and certificate, issuing leaf certificates signed by it."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert, self.key = cert, key

    @classmethod
    def create(cls, *, common_name: str = "skiff-ca", now: datetime.datetime | None = None
               ) -> "CertificateAuthority":
        now = now or datetime.datetime.now(datetime.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return cls(cert, key)

    @classmethod
    def load(cls, directory: Path) -> "CertificateAuthority":
        try:
            cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
            key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise PkiError(f"cannot load the cluster CA from {directory}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{directory / 'ca.key'}: not an EC private key")
        return cls(cert, key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def save(self, directory: Path) -> None:
        _write_private(directory / "ca.key", _key_pem(self.key))
        _write_private(directory / "ca.crt", self.cert_pem)

    def issue(self, *, common_name: str, groups: Iterable[str] = (), server: bool = False, client: bool = False,
              dns_names: Iterable[str] = (), ip_addresses: Iterable[str] = (), days: int = LEAF_DAYS,
              now: datetime.datetime | None = None) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) of a new leaf for serving and/or client authentication."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        usages = [*([ExtendedKeyUsageOID.SERVER_AUTH] if server else []),
                  *([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])]
        builder = (x509.CertificateBuilder().subject_name(_name(common_name, groups))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(min(now + datetime.timedelta(days=days), self.cert.not_valid_after_utc))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                                content_commitment=False, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=False, crl_sign=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys(dns_names) if d]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(ip_addresses) if a]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


# ------------------------------------------------------------ the cluster's files

@dataclass(frozen=True)
class ClusterPki:
    """The files of one cluster's PKI under `directory` (DATA/pki)."""
    directory: Path

    # NAMEs for cert_file/key_file of etcd's CA's certificates
    ETCD_SERVER = "etcd/server"
    ETCD_CLIENT = "apiserver-etcd-client"
    PROMETHEUS_ETCD_CLIENT = "prometheus-etcd-client"

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    def cert_file(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key_file(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    @property
    def token_file(self) -> Path:
        return self.directory / "tokens.csv"

    @property
    def encryption_key_file(self) -> Path:
        return self.directory / "encryption.key"

    @property
    def etcd_ca_file(self) -> Path:
        return self.directory / "etcd" / "ca.crt"

    def credentials(self, name: str) -> Credentials:
        return Credentials.load(ca=self.ca_file, cert=self.cert_file(name), key=self.key_file(name))

    def etcd_credentials(self) -> Credentials:
        """The control plane's client to etcd (etcd's CA, apiserver-etcd-client)."""
        return Credentials.load(ca=self.etcd_ca_file, cert=self.cert_file(self.ETCD_CLIENT),
                                key=self.key_file(self.ETCD_CLIENT))

    def ensure_etcd_ca(self) -> CertificateAuthority:
        """etcd's own CA (kubeadm's etcd/ca): etcd trusts only certificates it signed, so a node's,
        the admin's or any user's certificate from the cluster CA opens nothing there."""
        directory = self.etcd_ca_file.parent
        if self.etcd_ca_file.exists():
            return CertificateAuthority.load(directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
        ca = CertificateAuthority.create(common_name="skiff-etcd-ca")
        ca.save(directory)
        return ca

    def ensure_etcd_client(self, name: str, *, user: str) -> Path:
        """A client certificate of etcd's CA as NAME.crt/.key, kept if there (Prometheus')."""
        return self._ensure(self.ensure_etcd_ca(), name, common_name=user, client=True)

    def ensure_ca(self) -> CertificateAuthority:
        if self.ca_file.exists():
            return CertificateAuthority.load(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        ca = CertificateAuthority.create()
        ca.save(self.directory)
        return ca

    def _ensure(self, ca: CertificateAuthority, name: str, **issue) -> Path:
        if not self.cert_file(name).exists() or not self.key_file(name).exists():
            cert, key = ca.issue(**issue)
            _write_private(self.key_file(name), key)
            _write_private(self.cert_file(name), cert)
        return self.cert_file(name)

    def ensure_cluster(self, *, api_addresses: Iterable[str], service_cluster_ip: str,
                       node_names: Iterable[str] = (), node_addresses: dict[str, str] | None = None,
                       hostname: str = "") -> CertificateAuthority:
        """The CA and every certificate a cluster started by `skiff up --secure` needs."""
        ca = self.ensure_ca()
        hostname = hostname or socket.gethostname()
        self._ensure(ca, "apiserver", common_name="skiff-apiserver", server=True,
                     dns_names=[hostname, "localhost", *API_SERVICE_NAMES],
                     ip_addresses=["127.0.0.1", *api_addresses, service_cluster_ip])
        self._ensure(ca, "admin", common_name=ADMIN_USER, groups=[MASTERS], client=True)
        self._ensure(ca, "controlplane", common_name=CONTROLPLANE_USER, groups=[MASTERS], client=True)
        etcd_ca = self.ensure_etcd_ca()
        # client too: etcd dials itself (its gRPC gateway) with this certificate under --client-cert-auth
        self._ensure(etcd_ca, self.ETCD_SERVER, common_name="skiff-etcd", server=True, client=True,
                     dns_names=["localhost"], ip_addresses=["127.0.0.1"])
        self._ensure(etcd_ca, self.ETCD_CLIENT, common_name="skiff-apiserver-etcd-client", client=True)
        for node in node_names:
            self.ensure_node(ca, node, address=(node_addresses or {}).get(node, "127.0.0.1"))
        if not self.token_file.exists():
            _write_private(self.token_file, b"")
        if not self.encryption_key_file.exists():   # Secrets at rest (controlplane/store/encryption.py)
            _write_private(self.encryption_key_file, f"key1:{base64.b64encode(os.urandom(32)).decode()}\n".encode())
        return ca

    def ensure_node(self, ca: CertificateAuthority, node: str, *, address: str) -> Path:
        return self._ensure(ca, f"node-{node}", common_name=f"system:node:{node}", groups=[NODES],
                            server=True, client=True, dns_names=[node], ip_addresses=["127.0.0.1", address])

    def ensure_client(self, name: str, *, user: str, groups: Iterable[str] = ()) -> Path:
        """A client certificate for `user` as NAME.crt/.key, kept if there (e.g. Prometheus' for etcd)."""
        return self._ensure(self.ensure_ca(), name, common_name=user, groups=groups, client=True)

    def issue_user(self, name: str, *, user: str, groups: Iterable[str] = ()) -> Credentials:
        """A client certificate for a user (written as NAME.crt/.key), e.g. for a test's "alice"."""
        ca = CertificateAuthority.load(self.directory)
        cert, key = ca.issue(common_name=user, groups=groups, client=True)
        _write_private(self.key_file(name), key)
        _write_private(self.cert_file(name), cert)
        return Credentials(ca=ca.cert_pem, cert=cert, key=key)

    def add_token(self, *, user: str, groups: Iterable[str] = (), uid: str = "") -> str:
        """A new bearer token for `user`, appended to tokens.csv (kube-apiserver's --token-auth-file)."""
        token = secrets.token_hex(16)
        existing = self.token_file.read_bytes() if self.token_file.exists() else b""
        line = f'{token},{user},{uid or user},"{",".join(groups)}"\n'
        _write_private(self.token_file, existing + line.encode())
        return token


def read_token_file(path: Path) -> dict[str, Identity]:
    """token -> Identity from a static token file: `token,user,uid[,"group1,group2"]` a line."""
    import csv
    out: dict[str, Identity] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PkiError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or row[0].startswith("#"):
            continue
        if len(row) < 3 or not row[0] or not row[1]:
            raise PkiError(f"{path}:{number}: expected token,user,uid[,\"groups\"]")
        groups = tuple(g for g in (row[3].split(",") if len(row) > 3 else []) if g)
        out[row[0]] = Identity(user=row[1], groups=groups)
    return out
