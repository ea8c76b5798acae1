"""Joining nodes, the control plane's side (decision 36), without etcd: the bootstrap-token
authenticator, the CSR auto-approver's verdicts, the signer, the token cleaner and the bootstrap
signer over FakeApiClient, the requester written into a CSR, NodeRestriction."""
from __future__ import annotations

import asyncio
import datetime

import pytest
from cryptography import x509

from controlplane.auth import Attributes, Unauthenticated
from controlplane.bootstrapauth import BootstrapTokenAuthenticator
from controlplane.controllers.bootstraptokens import BootstrapSigner, TokenCleaner
from controlplane.controllers.csrapproving import CsrApprovingController, decide
from controlplane.controllers.csrsigning import CsrSigningController
from controlplane.nodeauthorizer import NodeAuthorizer, NodeRestriction
from controlplane.requestadmission import RequestAdmission
from controlplane.store import MemoryStore
from proto.skiff.v1 import certificates_pb2, types_pb2
from skiff import bootstraptoken as bt
from skiff import csr as csrs
from skiff.api import kinds
from skiff.pki import CertificateAuthority, Identity

T0 = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
BOOTSTRAPPER = Identity("system:bootstrap:abcdef", (bt.GROUP, bt.DEFAULT_GROUP))
N1 = Identity("system:node:n1", ("system:nodes",))


def _token_secret(token: bt.BootstrapToken) -> types_pb2.Secret:
    s = types_pb2.Secret(api_version="v1", kind="Secret", type=bt.SECRET_TYPE)
    s.metadata.name, s.metadata.namespace = bt.SECRET_PREFIX + token.id, bt.NAMESPACE
    for k, v in bt.secret_data(token).items():
        s.data[k] = v
    return s


def _csr(node: str, *, by: Identity, usages=("digital signature", "client auth"), groups=("system:nodes",),
         signer=csrs.KUBELET_CLIENT_SIGNER, dns=()) -> certificates_pb2.CertificateSigningRequest:
    _, request = csrs.node_key_and_request(node, dns_names=dns)
    if groups != ("system:nodes",):   # a subject other than a node's
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups),
                          x509.NameAttribute(NameOID.COMMON_NAME, node)])
        request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256()).public_bytes(
            serialization.Encoding.PEM)
    obj = certificates_pb2.CertificateSigningRequest(api_version="certificates.k8s.io/v1",
                                                     kind="CertificateSigningRequest")
    obj.metadata.name = f"csr-{node}"
    obj.spec.request, obj.spec.signer_name = request, signer
    obj.spec.usages[:] = list(usages)
    kinds.kind_of(obj).strategy.requested_by(obj, user=by.user, groups=by.groups)
    return obj


# ------------------------------------------------------------ authentication

def test_a_bootstrap_token_authenticates_until_it_expires():
    async def go():
        store = MemoryStore()
        now = [T0]
        await store.create(_token_secret(bt.BootstrapToken("abcdef", "0123456789abcdef",
                                                            T0 + datetime.timedelta(hours=1))))
        auth = BootstrapTokenAuthenticator(store, now=lambda: now[0])
        who = await auth.authenticate("abcdef.0123456789abcdef")
        assert who == Identity("system:bootstrap:abcdef", (bt.GROUP, bt.DEFAULT_GROUP))
        assert await auth.authenticate("not-a-bootstrap-token") is None   # another link's
        with pytest.raises(Unauthenticated, match="abcdef: unknown token id or wrong secret"):
            await auth.authenticate("abcdef.0123456789abcdee")
        with pytest.raises(Unauthenticated, match="zzzzzz: unknown"):
            await auth.authenticate("zzzzzz.0123456789abcdef")
        now[0] = T0 + datetime.timedelta(hours=2)
        with pytest.raises(Unauthenticated, match="expired at 2026-12-01T01:00:00Z"):
            await auth.authenticate("abcdef.0123456789abcdef")
    asyncio.run(go())


# ------------------------------------------------------------ the approver's verdicts

def test_a_bootstrapper_asking_for_a_node_certificate_is_approved():
    assert decide(_csr("n1", by=BOOTSTRAPPER))[:2] == ("Approved", "AutoApproved")


def test_a_node_renewing_its_own_name_is_approved_and_another_name_denied():
    assert decide(_csr("n1", by=N1, usages=("digital signature", "key encipherment", "client auth",
                                            "server auth"), dns=("n1",)))[:2] == ("Approved", "AutoApproved")
    verdict = decide(_csr("n2", by=N1))
    assert verdict[:2] == ("Denied", "NotOwnNode")
    assert verdict[2] == "node 'n1' may renew only its own certificate; the request asks for 'system:node:n2'"


def test_wrong_usages_subject_or_dns_names_are_denied_with_the_reason():
    verdict = decide(_csr("n1", by=BOOTSTRAPPER, usages=("digital signature", "client auth", "code signing")))
    assert verdict[:2] == ("Denied", "InvalidUsages") and "code signing" in verdict[2]
    verdict = decide(_csr("admin", by=BOOTSTRAPPER, groups=("system:masters",)))
    assert verdict[:2] == ("Denied", "InvalidSubject") and "'admin'" in verdict[2]
    verdict = decide(_csr("n1", by=BOOTSTRAPPER, dns=("n1", "kubernetes.default.svc")))
    assert verdict[:2] == ("Denied", "InvalidSubject") and "kubernetes.default.svc" in verdict[2]


def test_other_signers_and_other_requesters_wait_for_a_person():
    assert decide(_csr("n1", by=BOOTSTRAPPER, signer="example.com/other")) is None
    assert decide(_csr("n1", by=Identity("alice", ("dev",)))) is None


# ------------------------------------------------------------ the controllers over FakeApiClient

def test_a_bootstrappers_csr_is_approved_and_issued_from_the_cluster_ca():
    from controlplane.testing import FakeApiClient, eventually, running
    from skiff.controller import SharedInformerFactory

    async def go():
        c = FakeApiClient()
        ca = CertificateAuthority.create()
        factory = SharedInformerFactory(c)
        controllers = (CsrApprovingController(client=c, factory=factory),
                       CsrSigningController(client=c, factory=factory, ca=ca, duration=datetime.timedelta(minutes=10)))
        async with running(*controllers, factory=factory):
            await c.create(_csr("n1", by=BOOTSTRAPPER))
            await c.create(_csr("n2", by=N1))
            issued = await eventually(lambda: _certificate(c, "csr-n1"), what="certificate issued")
            cert = x509.load_pem_x509_certificate(issued)
            assert cert.issuer == ca.cert.subject
            assert cert.subject.rfc4514_string() == "CN=system:node:n1,O=system:nodes"
            lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
            assert lifetime == datetime.timedelta(minutes=15)   # 10 minutes + 5 of clock skew before
            denied = await eventually(lambda: _condition(c, "csr-n2", "Denied"), what="csr-n2 denied")
            assert denied.reason == "NotOwnNode"
            assert not (await c.get("CertificateSigningRequest", "csr-n2", "")).status.certificate
    asyncio.run(asyncio.wait_for(go(), 30))


async def _certificate(c, name):
    return (await c.get("CertificateSigningRequest", name, "")).status.certificate


async def _condition(c, name, type_):
    obj = await c.get("CertificateSigningRequest", name, "")
    return next((x for x in obj.status.conditions if x.type == type_), None)


def test_the_bootstrap_signer_signs_cluster_info_per_valid_token_and_the_cleaner_deletes_expired_ones():
    from controlplane.testing import FakeApiClient, eventually, running
    from skiff.controller import SharedInformerFactory

    async def go():
        c = FakeApiClient()
        for ns in ("kube-system", "kube-public"):
            n = types_pb2.Namespace(api_version="v1", kind="Namespace")
            n.metadata.name = ns
            try:
                await c.create(n)
            except Exception:   # the fake may hold them already
                pass
        now = datetime.datetime.now(datetime.timezone.utc)
        live = bt.BootstrapToken("abcdef", "0123456789abcdef", now + datetime.timedelta(hours=1))
        expired = bt.BootstrapToken("zzzzzz", "0123456789abcdef", now - datetime.timedelta(seconds=1))
        for t in (live, expired):
            await c.create(_token_secret(t))
        kubeconfig = bt.cluster_info_kubeconfig(server="https://127.0.0.1:6444",
                                                ca_pem=CertificateAuthority.create().cert_pem)
        factory = SharedInformerFactory(c)
        async with running(BootstrapSigner(client=c, factory=factory, kubeconfig=kubeconfig),
                           TokenCleaner(client=c, factory=factory), factory=factory):
            async def info():
                try:
                    return dict((await c.get("ConfigMap", "cluster-info", "kube-public")).data)
                except Exception:
                    return None
            data = await eventually(info, what="cluster-info written")
            assert data["kubeconfig"] == kubeconfig
            assert bt.verify_signature(kubeconfig, data["jws-kubeconfig-abcdef"], "abcdef", "0123456789abcdef")
            assert "jws-kubeconfig-zzzzzz" not in data

            async def gone():
                names = [s.metadata.name for s in (await c.list("Secret", "kube-system"))[0]]
                return "bootstrap-token-zzzzzz" not in names and "bootstrap-token-abcdef" in names
            await eventually(gone, what="the expired token deleted")
            await c.delete("Secret", "bootstrap-token-abcdef", "kube-system")
            await eventually(lambda: _no_jws(info), what="the deleted token's signature removed")
    asyncio.run(asyncio.wait_for(go(), 30))


async def _no_jws(info):
    data = await info()
    return data is not None and not any(k.startswith("jws-kubeconfig-") for k in data)


# ------------------------------------------------------------ admission

def test_the_requester_is_written_into_a_csr_whatever_the_client_sent():
    async def go():
        obj = _csr("n1", by=Identity("system:masters-pretender", ("system:masters",)))
        assert await RequestAdmission(MemoryStore())(BOOTSTRAPPER, Attributes(verb="create"), obj) is None
        assert (obj.spec.username, list(obj.spec.groups)) == (BOOTSTRAPPER.user, list(BOOTSTRAPPER.groups))
    asyncio.run(go())


def test_node_restriction():
    async def go():
        store = MemoryStore()
        node = types_pb2.Node(api_version="v1", kind="Node")
        node.metadata.name = "n1"
        node.metadata.labels["node-restriction.kubernetes.io/zone"] = "a"
        await store.create(node)
        pod = types_pb2.Pod(api_version="v1", kind="Pod")
        pod.metadata.name, pod.metadata.namespace = "web", "default"
        pod.spec.node_name = "n2"
        pod.spec.containers.add(name="c", image="busybox")
        await store.create(pod)
        nr, authz = NodeRestriction(store), NodeAuthorizer(store)

        other = types_pb2.Node(api_version="v1", kind="Node")
        other.metadata.name = "n2"
        assert await nr.admit(N1, Attributes(verb="create", resource="nodes"), other) == \
            'node "n1" is not allowed to create nodes "n2"'
        lease = types_pb2.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
        lease.metadata.name, lease.metadata.namespace = "n2", "kube-node-lease"
        assert "not allowed to modify leases" in await nr.admit(
            N1, Attributes(verb="update", resource="leases", name="n2"), lease)
        mine = types_pb2.Node()
        mine.CopyFrom(node)
        mine.metadata.labels["skiff.dev/role"] = "web"
        assert await nr.admit(N1, Attributes(verb="update", resource="nodes", name="n1"), mine) is None
        mine.metadata.labels["node-restriction.kubernetes.io/zone"] = "b"
        assert await nr.admit(N1, Attributes(verb="update", resource="nodes", name="n1"), mine) == (
            'node "n1" is not allowed to modify labels: node-restriction.kubernetes.io/zone '
            "(the node-restriction.kubernetes.io/ prefix is the administrator's)")
        assert await nr.admit(Identity("admin", ("system:masters",)),
                              Attributes(verb="update", resource="nodes", name="n1"), mine) is None
        # Pods: only the status of pods bound to it; never a new pod or a binding.
        status = dict(verb="update", resource="pods", subresource="status", namespace="default", name="web")
        assert await authz.decide(N1, Attributes(**status)) is False
        assert await authz.decide(Identity("system:node:n2", ("system:nodes",)), Attributes(**status)) is True
        assert await authz.decide(N1, Attributes(verb="create", resource="pods", namespace="default")) is False
        assert await authz.decide(N1, Attributes(verb="create", resource="pods", subresource="binding",
                                                 namespace="default", name="web")) is False
    asyncio.run(go())


def test_kubeadms_roles_let_anonymous_read_cluster_info_and_bootstrappers_send_csrs():
    from controlplane import bootstraprbac
    from controlplane.api.registry import Registry
    from controlplane.rbac import RbacAuthorizer

    async def go():
        store = MemoryStore()
        registry = Registry(store=store)
        await registry.bootstrap()
        await bootstraprbac.bootstrap(registry.create)   # names with ':' as Kubernetes' (path segments)
        await bootstraprbac.bootstrap(registry.create)   # idempotent
        rbac = RbacAuthorizer(store)
        anonymous = Identity("system:anonymous", ("system:unauthenticated",))
        read = Attributes(verb="get", resource="configmaps", namespace="kube-public", name="cluster-info")
        for _ in range(100):   # its caches fill from the store
            if await rbac.decide(anonymous, read):
                break
            await asyncio.sleep(0.05)
        assert await rbac.decide(anonymous, read) is True
        assert not await rbac.decide(anonymous, Attributes(verb="get", resource="configmaps",
                                                           namespace="kube-public", name="other"))
        csr = Attributes(verb="create", resource="certificatesigningrequests", api_group="certificates.k8s.io")
        assert await rbac.decide(BOOTSTRAPPER, csr) is True
        assert not await rbac.decide(Identity("system:bootstrap:other", (bt.GROUP,)), csr)
    asyncio.run(go())
