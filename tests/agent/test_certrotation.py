"""The node certificate's rotation (agent/certrotation.py, decision 36): when (a jittered 70-90 %
of the lifetime), and one renewal through a CSR the cluster's approver and signer answer (over
FakeApiClient, as the node itself), the files rewritten as a matching pair."""
from __future__ import annotations

import asyncio
import datetime
import stat

from agent.certrotation import CertificateRotator, pair_matches, rotation_deadline
from controlplane.controllers.csrapproving import CsrApprovingController
from controlplane.controllers.csrsigning import CsrSigningController
from proto.skiff.v1 import types_pb2
from skiff import csr as csrs
from skiff.pki import CertificateAuthority


def test_the_deadline_is_70_to_90_percent_of_the_lifetime():
    ca = CertificateAuthority.create()
    cert, _ = ca.issue(common_name="system:node:n1", groups=["system:nodes"], client=True, days=10)
    start, end = csrs.certificate_lifetime(cert)
    assert rotation_deadline(cert, jitter=0.0) == start + (end - start) * 0.7
    assert rotation_deadline(cert, jitter=0.999) < start + (end - start) * 0.9
    assert rotation_deadline(cert, jitter=0.5) == start + (end - start) * 0.8


def test_a_renewal_rewrites_the_pair_and_hands_it_over(tmp_path):
    from controlplane.testing import FakeApiClient, eventually, running
    from skiff.controller import SharedInformerFactory

    ca = CertificateAuthority.create()
    cert, key = ca.issue(common_name="system:node:n1", groups=["system:nodes"], client=True, server=True)
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "node.crt").write_bytes(cert)
    (tmp_path / "node.key").write_bytes(key)
    handed: list = []

    async def go():
        # The fake answers as the registry does; the admission that writes the requester runs in
        # the real server, so the rotator's CSR is stamped here as system:node:n1 would be.
        c = FakeApiClient()
        # The node as it registered itself: the approver lets a renewal name only its Node's addresses.
        node = types_pb2.Node(api_version="v1", kind="Node")
        node.metadata.name = "n1"
        node.status.addresses.add(type="InternalIP", address="10.0.0.11")
        await c.create(node)
        create = c.create

        async def as_node(obj):
            obj.spec.username, obj.spec.groups[:] = "system:node:n1", ["system:nodes"]
            return await create(obj)
        c.create = as_node
        factory = SharedInformerFactory(c)
        controllers = (CsrApprovingController(client=c, factory=factory),
                       CsrSigningController(client=c, factory=factory, ca=ca, duration=datetime.timedelta(hours=1)))
        rotator = CertificateRotator(client=c, node_name="n1", node_ip="10.0.0.11", ca_file=str(tmp_path / "ca.crt"),
                                     cert_file=str(tmp_path / "node.crt"), key_file=str(tmp_path / "node.key"),
                                     on_rotated=handed.append)
        async with running(*controllers, factory=factory):
            await factory.wait_synced()
            await rotator.rotate()
        csr_list, _ = await c.list("CertificateSigningRequest")
        return csr_list

    csr_list = asyncio.run(asyncio.wait_for(go(), 60))
    new_cert, new_key = (tmp_path / "node.crt").read_bytes(), (tmp_path / "node.key").read_bytes()
    assert new_cert != cert and new_key != key and pair_matches(new_cert, new_key)
    assert not pair_matches(new_cert, key)
    assert csrs.certificate_identity(new_cert).user == "system:node:n1"
    start, end = csrs.certificate_lifetime(new_cert)
    assert end - start == datetime.timedelta(hours=1, minutes=5)
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "node.crt", tmp_path / "node.key")} == {0o600}
    assert [h.cert for h in handed] == [new_cert] and handed[0].ca == ca.cert_pem
    assert [o.status.conditions[0].reason for o in csr_list] == ["AutoApproved"]


def test_a_client_swaps_credentials_and_closes_the_old_channel_with_itself():
    from skiff.client import ApiClient
    from skiff.pki import Credentials

    async def go():
        ca = CertificateAuthority.create()
        cert, key = ca.issue(common_name="system:node:n1", client=True)
        client = ApiClient("127.0.0.1:1", credentials=Credentials(ca=ca.cert_pem, cert=cert, key=key))
        client.stub   # opens the first channel
        first = client._channel
        renewed = Credentials(ca=ca.cert_pem, cert=cert + b"", key=key)
        await client.use_credentials(renewed)
        assert client.credentials is renewed and client._channel is None
        client.stub
        assert client._channel is not first and client._retired == [first]   # its watches stay on it
        await client.close()
        assert client._retired == []
    asyncio.run(asyncio.wait_for(go(), 30))
