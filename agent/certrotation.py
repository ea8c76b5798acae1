"""The node certificate's rotation, as kubelet's certificate manager
(`--rotate-certificates`, issue 12, decision 36).

    read DATA/pki/node.crt ──► sleep until a jittered 70-90 % of its lifetime
          ▲                                   │
          │                                   ▼
    hot-swap: new gRPC channel to the API,    new key + CSR (system:node:NAME, as the node
    the serving side's next handshake         itself: the auto-approver approves a node's
    (dynamic credentials), peers' registry    renewal of its own name) ──► wait until issued
          ▲                                   │
          └──── write key, then certificate ◄─┘ (each by rename, 0600)

A failed or refused renewal is logged and tried again after a back-off while
the current certificate is valid; pods are never touched. The serving side
reads the files on each new handshake (`serving_credentials`): it takes the pair
only when key and certificate match, so a handshake between the two renames
keeps the previous pair.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import os
import random
import secrets
from pathlib import Path
from typing import Awaitable, Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from proto.skiff.v1 import certificates_pb2
from skiff import csr as csrs
from skiff.client import ApiClient, ApiError, NotFound
from skiff.pki import Credentials

log = logging.getLogger(__name__)
USAGES = ("digital signature", "key encipherment", "client auth", "server auth")
RETRY_SECONDS = 10.0
WAIT_ISSUED_SECONDS = 120.0
Clock = Callable[[], datetime.datetime]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def rotation_deadline(cert_pem: bytes, *, jitter: float) -> datetime.datetime:
    """When to renew: notBefore + (0.7 + 0.2 * jitter) of the lifetime (jitter in [0, 1)), as kubelet."""
    start, end = csrs.certificate_lifetime(cert_pem)
    return start + (end - start) * (0.7 + 0.2 * jitter)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def pair_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError:
        return False
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return (cert.public_key().public_bytes(serialization.Encoding.DER, spki)
            == key.public_key().public_bytes(serialization.Encoding.DER, spki))


def serving_credentials(*, ca_file: str, cert_file: str, key_file: str):
    """gRPC server credentials that take the node's current pair from disk at each new handshake."""
    import grpc
    seen: dict[str, object] = {}

    def current():
        try:
            cert, key = Path(cert_file).read_bytes(), Path(key_file).read_bytes()
            ca = Path(ca_file).read_bytes()
        except OSError:
            return None
        stamp = (cert, key)
        if seen.get("stamp") == stamp or not pair_matches(cert, key):
            return None
        seen["stamp"] = stamp
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    initial = current()
    if initial is None:
        raise OSError(f"{cert_file} and {key_file}: not a matching certificate and key")
    return grpc.dynamic_ssl_server_credentials(initial, current, require_client_authentication=True)


class CertificateRotator:
    def __init__(self, *, client: ApiClient, node_name: str, node_ip: str, ca_file: str, cert_file: str,
                 key_file: str, on_rotated: Callable[[Credentials], Awaitable[None] | None],
                 clock: Clock = _utcnow, jitter: Callable[[], float] = random.random) -> None:
        self.client, self.node_name, self.node_ip = client, node_name, node_ip
        self.ca_file, self.cert_file, self.key_file = ca_file, Path(cert_file), Path(key_file)
        self.on_rotated, self.clock, self.jitter = on_rotated, clock, jitter
        self.rotations = 0

    async def run(self) -> None:
        while True:
            deadline = rotation_deadline(self.cert_file.read_bytes(), jitter=self.jitter())
            wait = (deadline - self.clock()).total_seconds()
            log.info("node certificate: renewing at %s (in %.0fs)", deadline.isoformat(timespec="seconds"),
                     max(wait, 0))
            if wait > 0:
                await asyncio.sleep(wait)
            while True:
                try:
                    await self.rotate()
                    break
                except (ApiError, csrs.CsrError, OSError, TimeoutError) as exc:
                    log.warning("node certificate: renewal failed (%s); again in %gs", exc, RETRY_SECONDS)
                    await asyncio.sleep(RETRY_SECONDS)

    async def rotate(self) -> None:
        key, request = csrs.node_key_and_request(self.node_name, dns_names=[self.node_name],
                                                 ip_addresses=["127.0.0.1", self.node_ip])
        obj = certificates_pb2.CertificateSigningRequest(
            api_version="certificates.k8s.io/v1", kind="CertificateSigningRequest")
        obj.metadata.name = f"node-csr-{secrets.token_hex(8)}"
        obj.spec.request, obj.spec.signer_name = request, csrs.KUBELET_CLIENT_SIGNER
        obj.spec.usages[:] = USAGES
        await self.client.create(obj)
        cert = await self._issued(obj.metadata.name)
        _write_private(self.key_file.with_name(self.key_file.name + ".new"), key)
        # Key first, then certificate, each by rename: the serving side takes only a matching pair.
        os.replace(self.key_file.with_name(self.key_file.name + ".new"), self.key_file)
        _write_private(self.cert_file, cert)
        self.rotations += 1
        _, end = csrs.certificate_lifetime(cert)
        log.info("node certificate renewed through %s, valid until %s", obj.metadata.name,
                 end.isoformat(timespec="seconds"))
        done = self.on_rotated(Credentials(ca=Path(self.ca_file).read_bytes(), cert=cert, key=key))
        if asyncio.iscoroutine(done):
            await done

    async def _issued(self, name: str) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_ISSUED_SECONDS
        while loop.time() < deadline:
            try:
                got = await self.client.get("CertificateSigningRequest", name, "")
            except NotFound:
                got = None
            if got is not None:
                for c in got.status.conditions:
                    if c.type in ("Denied", "Failed") and c.status == "True":
                        raise csrs.CsrError(f"{name} was {c.type.lower()}: {c.message or c.reason}")
                if got.status.certificate:
                    return got.status.certificate
            await asyncio.sleep(1.0)
        raise TimeoutError(f"{name} was not issued within {WAIT_ISSUED_SECONDS:g}s")
