"""The CSR approver's IP address check (decision 41): a node's certificate is also its agent's
serving one, so the addresses it names are those of its own Node; loopback is always allowed."""
from __future__ import annotations

from controlplane.controllers.csrapproving import decide, node_addresses
from proto.skiff.v1 import certificates_pb2, types_pb2
from skiff import bootstraptoken as bt
from skiff import csr as csrs
from skiff.api import kinds
from skiff.pki import Identity

BOOTSTRAPPER = Identity("system:bootstrap:abcdef", (bt.GROUP, bt.DEFAULT_GROUP))
N1 = Identity("system:node:n1", ("system:nodes",))
USAGES = ("digital signature", "key encipherment", "client auth", "server auth")


def _node(name: str, ip: str) -> types_pb2.Node:
    n = types_pb2.Node(api_version="v1", kind="Node")
    n.metadata.name = name
    n.status.addresses.add(type="InternalIP", address=ip)
    n.status.addresses.add(type="Hostname", address=name)
    return n


NODES = node_addresses([_node("n1", "10.0.0.1"), _node("n2", "10.0.0.2")])


def _csr(node: str, *, by: Identity, ips: tuple[str, ...]) -> certificates_pb2.CertificateSigningRequest:
    _, request = csrs.node_key_and_request(node, dns_names=[node], ip_addresses=ips)
    obj = certificates_pb2.CertificateSigningRequest(api_version="certificates.k8s.io/v1",
                                                     kind="CertificateSigningRequest")
    obj.metadata.name = f"csr-{node}"
    obj.spec.request, obj.spec.signer_name = request, csrs.KUBELET_CLIENT_SIGNER
    obj.spec.usages[:] = list(USAGES)
    kinds.kind_of(obj).strategy.requested_by(obj, user=by.user, groups=by.groups)
    return obj


def test_a_renewal_naming_its_own_nodes_address_and_loopback_is_approved():
    assert decide(_csr("n1", by=N1, ips=("127.0.0.1", "10.0.0.1")), NODES)[:2] == ("Approved", "AutoApproved")
    assert decide(_csr("n1", by=N1, ips=("::1",)), NODES)[:2] == ("Approved", "AutoApproved")


def test_a_renewal_naming_another_nodes_address_is_denied_naming_it():
    verdict = decide(_csr("n1", by=N1, ips=("127.0.0.1", "10.0.0.1", "10.0.0.2")), NODES)
    assert verdict == ("Denied", "InvalidSubject", "a node certificate names only its Node's addresses "
                       "(10.0.0.1); the request also asks for 10.0.0.2")


def test_a_renewal_naming_any_address_no_node_has_is_denied():
    verdict = decide(_csr("n1", by=N1, ips=("192.0.2.7",)), NODES)
    assert verdict[:2] == ("Denied", "InvalidSubject") and verdict[2].endswith("also asks for 192.0.2.7")


def test_a_renewal_by_a_node_without_a_node_object_is_denied_when_it_names_an_address():
    verdict = decide(_csr("n3", by=Identity("system:node:n3", ("system:nodes",)), ips=("10.0.0.3",)), NODES)
    assert verdict == ("Denied", "InvalidSubject", "node 'n3' has no Node object to check the IP addresses "
                       "against; the request asks for 10.0.0.3")


def test_a_joining_node_may_name_a_fresh_address_but_not_another_nodes():
    assert decide(_csr("n3", by=BOOTSTRAPPER, ips=("127.0.0.1", "10.0.0.3")), NODES)[:2] == ("Approved",
                                                                                          "AutoApproved")
    verdict = decide(_csr("n3", by=BOOTSTRAPPER, ips=("127.0.0.1", "10.0.0.2")), NODES)
    assert verdict == ("Denied", "InvalidSubject", "IP address 10.0.0.2 is node 'n2''s: a joining node may not "
                       "name it")
    # joining again under its own name keeps its address
    assert decide(_csr("n1", by=BOOTSTRAPPER, ips=("10.0.0.1",)), NODES)[:2] == ("Approved", "AutoApproved")


def test_the_controller_checks_addresses_against_the_nodes_it_lists():
    import asyncio

    from controlplane.controllers.csrapproving import CsrApprovingController
    from controlplane.testing import FakeApiClient, eventually, running
    from skiff.controller import SharedInformerFactory

    async def condition(c, name):
        obj = await c.get("CertificateSigningRequest", name, "")
        return next(((x.type, x.reason) for x in obj.status.conditions), None)

    async def go():
        c = FakeApiClient()
        for node in (_node("n1", "10.0.0.1"), _node("n2", "10.0.0.2")):
            await c.create(node)
        factory = SharedInformerFactory(c)
        async with running(CsrApprovingController(client=c, factory=factory), factory=factory):
            await c.create(_csr("n1", by=N1, ips=("10.0.0.2",)))
            assert await eventually(lambda: condition(c, "csr-n1"), what="decided") == ("Denied", "InvalidSubject")
            await c.create(_csr("n2", by=Identity("system:node:n2", ("system:nodes",)), ips=("10.0.0.2",)))
            assert await eventually(lambda: condition(c, "csr-n2"), what="decided") == ("Approved", "AutoApproved")
    asyncio.run(asyncio.wait_for(go(), 30))
