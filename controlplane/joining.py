"""Joining nodes as kubeadm does (issue 12, decision 36): the control plane's
parts, wired here so controlplane/main.py stays a few lines.

  authentication   bootstrap tokens (controlplane/bootstrapauth.py), one link of the token chain
  admission        the requester into a CSR, NodeRestriction (controlplane/requestadmission.py)
  controllers      csrapproving, csrsigning (the cluster CA signs), csrcleaner, tokencleaner, bootstrapsigner
  bootstrap        kubeadm's roles for anonymous cluster-info and bootstrappers (controlplane/bootstraprbac.py)

The signer's CA is `--cluster-signing-cert-file/--cluster-signing-key-file`
(kube-controller-manager's flags), by default ca.crt/ca.key beside
--client-ca-file; node certificates live `--cluster-signing-duration` (default
$SKIFF_CLUSTER_SIGNING_DURATION, else 8760h as Kubernetes; a test sets minutes).
"""
from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path

from skiff import bootstraptoken as bt

log = logging.getLogger(__name__)
DURATION_ENV = "SKIFF_CLUSTER_SIGNING_DURATION"
DEFAULT_DURATION = "8760h"


def signing_duration(text: str = "") -> datetime.timedelta:
    """A Go duration (8760h, 10m, 90s); the env's or Kubernetes' default when empty."""
    text = text or os.environ.get(DURATION_ENV, "") or DEFAULT_DURATION
    try:
        duration = bt.parse_ttl(text)
    except bt.TokenError:
        duration = None
    if duration is None:
        raise ValueError(f'--cluster-signing-duration "{text}": a positive duration such as 8760h or 10m')
    return duration


def signing_files(*, client_ca_file: str, cert_file: str = "", key_file: str = "") -> tuple[str, str]:
    """The signer's CA certificate and key: the flags, else ca.crt/ca.key beside the client CA."""
    if cert_file and key_file:
        return cert_file, key_file
    directory = Path(client_ca_file).parent
    return cert_file or client_ca_file, key_file or str(directory / "ca.key")


def add_authentication(authenticator, store) -> None:
    from controlplane.bootstrapauth import BootstrapTokenAuthenticator
    authenticator.add_token_authenticator(BootstrapTokenAuthenticator(store))


def admission(store):
    from controlplane.requestadmission import RequestAdmission
    return RequestAdmission(store)


async def bootstrap(create) -> None:
    from controlplane import bootstraprbac
    await bootstraprbac.bootstrap(create)


def cluster_info_kubeconfig(*, client_ca_file: str, rest_listen: str, listen: str) -> str:
    return bt.cluster_info_kubeconfig(server=f"https://{rest_listen}", ca_pem=Path(client_ca_file).read_bytes(),
                                      api_server=listen)


def controllers(*, client, factory, client_ca_file: str, rest_listen: str, listen: str,
                signing_cert_file: str = "", signing_key_file: str = "", duration: datetime.timedelta) -> list:
    """The five controllers; without a readable signing key, no signer (CSRs stay approved, unissued)."""
    from controlplane.controllers.bootstraptokens import BootstrapSigner, TokenCleaner
    from controlplane.controllers.csrapproving import CsrApprovingController
    from controlplane.controllers.csrcleaner import CsrCleaner
    from controlplane.controllers.csrsigning import CsrSigningController
    from skiff.pki import PkiError
    out = [CsrApprovingController(client=client, factory=factory), CsrCleaner(client=client, factory=factory),
           TokenCleaner(client=client, factory=factory)]
    if rest_listen:
        out.append(BootstrapSigner(client=client, factory=factory, kubeconfig=cluster_info_kubeconfig(
            client_ca_file=client_ca_file, rest_listen=rest_listen, listen=listen)))
    cert, key = signing_files(client_ca_file=client_ca_file, cert_file=signing_cert_file, key_file=signing_key_file)
    try:
        ca = _load_ca(Path(cert), Path(key))
    except PkiError as exc:
        log.warning("no CSR signer: %s", exc)
        return out
    out.append(CsrSigningController(client=client, factory=factory, ca=ca, duration=duration))
    return out


def _load_ca(cert: Path, key: Path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from skiff.pki import CertificateAuthority, PkiError
    try:
        ca_cert = x509.load_pem_x509_certificate(cert.read_bytes())
        ca_key = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot load the signing CA {cert}, {key}: {exc}") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{key}: not an EC private key")
    return CertificateAuthority(ca_cert, ca_key)
