"""The CSR cleaner (decision 41): decided CSRs go 1 h after the decision, pending ones after 24 h,
issued ones once their certificate has expired; over FakeApiClient with an injected clock."""
from __future__ import annotations

import asyncio
import datetime
import time

from controlplane.controllers.csrcleaner import CsrCleaner, deadline
from controlplane.testing import FakeApiClient, eventually, running
from proto.skiff.v1 import certificates_pb2
from skiff import csr as csrs
from skiff.api import meta
from skiff.api.kinds.certificatesigningrequest import add_condition
from skiff.controller import SharedInformerFactory
from skiff.pki import CertificateAuthority

T0 = 1_800_000_000.0
HOUR = 3600.0


def _csr(name: str, *, created: float = T0, condition: tuple[str, float] | None = None,
         certificate: bytes = b"") -> certificates_pb2.CertificateSigningRequest:
    _, request = csrs.node_key_and_request("n1")
    obj = certificates_pb2.CertificateSigningRequest(api_version="certificates.k8s.io/v1",
                                                     kind="CertificateSigningRequest")
    obj.metadata.name = name
    obj.metadata.creation_timestamp.CopyFrom(meta.timestamp(created))
    obj.spec.request, obj.spec.signer_name = request, csrs.KUBELET_CLIENT_SIGNER
    obj.spec.usages[:] = ["digital signature", "client auth"]
    if condition is not None:
        type_, at = condition
        obj = add_condition(obj, type_, "Test", "")
        obj.status.conditions[-1].last_update_time.CopyFrom(meta.timestamp(at))
    if certificate:
        obj.status.certificate = certificate
    return obj


def _certificate(not_after: float) -> bytes:
    ca = CertificateAuthority.create()
    start = datetime.datetime.fromtimestamp(not_after - HOUR, datetime.timezone.utc)
    return csrs.sign(ca, _csr("x").spec.request, usages=["client auth"], duration=datetime.timedelta(hours=1),
                     now=start)


def test_each_state_has_its_deadline():
    assert deadline(_csr("pending")) == (T0 + 24 * HOUR, "pending for more than 24h")
    for type_ in ("Approved", "Denied", "Failed"):
        assert deadline(_csr("d", condition=(type_, T0 + 5))) == (T0 + 5 + HOUR, f"{type_.lower()} more than 1h ago")
    issued = _csr("i", condition=("Approved", T0), certificate=_certificate(T0 + 600))
    assert deadline(issued) == (T0 + 600, "its certificate has expired")
    # a certificate outliving the hour: the hour decides
    assert deadline(_csr("i", condition=("Approved", T0), certificate=_certificate(T0 + 9 * HOUR)))[0] == T0 + HOUR


def test_the_cleaner_deletes_what_is_past_its_deadline_and_keeps_the_rest():
    async def go():
        c = FakeApiClient()
        real = time.time()   # when the CSRs are made and decided (the fake stamps them with the real time)
        for name in ("pending", "approved", "denied", "issued"):
            await c.create(_csr(name))
        for name, type_ in (("approved", "Approved"), ("denied", "Denied"), ("issued", "Approved")):
            obj = add_condition(await c.get("CertificateSigningRequest", name, ""), type_, "Test", "")
            if name == "issued":
                obj.status.certificate = _certificate(real + 20 * 60)
            await c.update_status(obj)

        async def names():
            return sorted(o.metadata.name for o in (await c.list("CertificateSigningRequest"))[0])

        async def clean_at(clock: float, expected: list[str]) -> None:
            factory = SharedInformerFactory(c)
            async with running(CsrCleaner(client=c, factory=factory, clock=lambda: clock), factory=factory):
                async def done():
                    return await names() == expected
                await eventually(done, what=f"only {expected} left")
                await asyncio.sleep(0.2)   # nothing else goes
                assert await names() == expected

        await clean_at(real + 30 * 60, ["approved", "denied", "pending"])   # the certificate expired
        await clean_at(real + 2 * HOUR, ["pending"])                         # decided more than 1h ago
        await clean_at(real + 23 * HOUR, ["pending"])
        await clean_at(real + 25 * HOUR, [])                                 # pending more than 24h
    asyncio.run(asyncio.wait_for(go(), 30))
