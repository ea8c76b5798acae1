"""Certificate signing requests (issue 12, decision 36): what a node sends to
get its certificate, and what the cluster's signer does with it.

    node_key_and_request(name)   a new EC P-256 key and the PEM CSR for
                                 CN system:node:NAME, O system:nodes (kubelet's)
    request_identity(pem)        who a CSR names (its CN and O), checking its signature
    sign(ca, pem, ...)           the certificate the signer
                                 `kubernetes.io/kube-apiserver-client-kubelet` issues: the
                                 CSR's subject and SANs, the cluster CA as issuer, a lifetime
                                 no longer than the signer's

Kubernetes' usage names map to X.509: "client auth"/"server auth" are extended
key usages, "digital signature"/"key encipherment" key usages.
"""
from __future__ import annotations

import datetime
import ipaddress
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.pki import NODES, CertificateAuthority, Identity, identity_of

KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_USAGES = ("digital signature", "client auth")
KNOWN_USAGES = ("signing", "digital signature", "content commitment", "key encipherment", "key agreement",
                "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
                "server auth", "client auth", "code signing", "email protection", "s/mime", "ipsec end system",
                "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc")
NODE_PREFIX = "system:node:"


class CsrError(ValueError):
    """A request that cannot be read or signed; the message says why."""


def node_key_and_request(node: str, *, dns_names: Iterable[str] = (), ip_addresses: Iterable[str] = ()
                         ) -> tuple[bytes, bytes]:
    """(key PEM, CSR PEM) for system:node:NODE in system:nodes (kubelet's client certificate request);
    SANs make the certificate usable as the agent's serving one too."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES),
                      x509.NameAttribute(NameOID.COMMON_NAME, NODE_PREFIX + node)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys(dns_names) if d]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(ip_addresses) if a]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def load(pem: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError:
        raise CsrError("not a PEM certificate request (CERTIFICATE REQUEST)") from None
    if not csr.is_signature_valid:
        raise CsrError("the request's signature does not match its key")
    return csr


def request_identity(pem: bytes) -> Identity:
    """The CN (user) and O (groups) a CSR asks for."""
    csr = load(pem)
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    groups = csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return Identity(user=str(cn[0].value) if cn else "", groups=tuple(str(g.value) for g in groups))


def request_dns_names(pem: bytes) -> list[str]:
    """The DNS names a CSR asks for as SANs."""
    return [str(n.value) for n in _sans(load(pem)) if isinstance(n, x509.DNSName)]


def request_ip_addresses(pem: bytes) -> list[str]:
    """The IP addresses a CSR asks for as SANs (normalized: ::1, not 0:0:...:1)."""
    return [str(n.value) for n in _sans(load(pem)) if isinstance(n, x509.IPAddress)]


def _sans(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    try:
        return list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def sign(ca: CertificateAuthority, pem: bytes, *, usages: Iterable[str], duration: datetime.timedelta,
         now: datetime.datetime | None = None) -> bytes:
    """The certificate (PEM) for a CSR: its subject and SANs, `usages`, valid for `duration` (not past the CA)."""
    csr = load(pem)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    usages = set(usages)
    eku = [*([ExtendedKeyUsageOID.CLIENT_AUTH] if "client auth" in usages else []),
           *([ExtendedKeyUsageOID.SERVER_AUTH] if "server auth" in usages else [])]
    builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.cert.subject)
               .public_key(csr.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(min(now + duration, ca.cert.not_valid_after_utc))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment="key encipherment" in usages,
                                            content_commitment=False, data_encipherment=False, key_agreement=False,
                                            key_cert_sign=False, crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                              critical=False))
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    sans = _sans(csr)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def certificate_lifetime(pem: bytes) -> tuple[datetime.datetime, datetime.datetime]:
    cert = x509.load_pem_x509_certificate(pem)
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def certificate_identity(pem: bytes) -> Identity:
    return identity_of(x509.load_pem_x509_certificate(pem))
