"""ServiceAccount tokens (controlplane/serviceaccounts/): signed and verified as
Kubernetes' JWTs, each refusal with its one-line reason, and the authenticator
that refuses a token whose account or bound pod is gone."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from controlplane.auth import Authenticator, Unauthenticated
from controlplane.serviceaccounts.authenticator import ServiceAccountTokens
from controlplane.serviceaccounts.keys import ensure_signing_key
from controlplane.serviceaccounts.tokenrequest import TokenIssuer
from controlplane.serviceaccounts.tokens import DEFAULT_ISSUER, TokenInvalid, TokenSigner
from controlplane.api.errors import Invalid
from controlplane.store import MemoryStore
from controlplane.store.interface import Conflict, NotFound
from proto.skiff.v1 import serviceaccounts_pb2, types_pb2
from skiff.api import kinds
from skiff.api.kinds import serviceaccount

class Clock:
    """The signer's clock. The verifier checks times against the wall clock (PyJWT's), so it
    starts there — when the test makes it, not when the module is imported (in the whole
    suite that is minutes earlier, and a token "valid for 2 more minutes" had expired)."""

    def __init__(self) -> None:
        self.now = self.start = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def signer(clock=None, key=None) -> TokenSigner:
    return TokenSigner(key or ec.generate_private_key(ec.SECP256R1()), clock=clock or Clock())


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def claims_of(token: str) -> dict:
    return json.loads(_unb64(token.split(".")[1]))


def test_a_token_carries_kubernetes_claims_and_verifies():
    clock = Clock()
    s = signer(clock)
    token, expires = s.sign(namespace="shop", name="web", uid="sa-uid", audiences=["api"], expiration_seconds=3600,
                            pod_name="web-1", pod_uid="pod-uid")
    c = claims_of(token)
    assert c["iss"] == DEFAULT_ISSUER and c["sub"] == "system:serviceaccount:shop:web" and c["aud"] == ["api"]
    assert c["exp"] == expires == int(clock.start) + 3600 and c["iat"] == c["nbf"] == int(clock.start)
    assert c["kubernetes.io"] == {"namespace": "shop", "serviceaccount": {"name": "web", "uid": "sa-uid"},
                                  "pod": {"name": "web-1", "uid": "pod-uid"}}
    got = s.verifier(audiences=["api"]).verify(token)
    assert (got.user, got.uid, got.pod_name, got.pod_uid) == ("system:serviceaccount:shop:web", "sa-uid",
                                                               "web-1", "pod-uid")


def test_a_token_verifies_independently_of_pyjwt():
    """The JWS by hand: Kubernetes' header (alg, kid = SHA-256 of the DER public key), ES256's r || s
    signature over `header.claims`, checked with `cryptography` alone."""
    key = ec.generate_private_key(ec.SECP256R1())
    token, _ = signer(key=key).sign(namespace="d", name="default", uid="u", audiences=[DEFAULT_ISSUER],
                                    expiration_seconds=600)
    header_b64, claims_b64, signature_b64 = token.split(".")
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert json.loads(_unb64(header_b64)) == {"alg": "ES256", "kid": kid}
    signature = _unb64(signature_b64)
    assert len(signature) == 64
    key.public_key().verify(encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                                 int.from_bytes(signature[32:], "big")),
                            f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))


def test_an_expired_or_future_token_is_refused():
    clock = Clock()
    s = signer(clock)
    clock.now = clock.start - 600 - 61     # expired 61 s ago: past the 60 s leeway
    token, _ = s.sign(namespace="d", name="default", uid="u", audiences=[DEFAULT_ISSUER], expiration_seconds=600)
    with pytest.raises(TokenInvalid, match="^service account token has expired$"):
        s.verifier().verify(token)
    clock.now = clock.start - 600 + 120    # expires in 2 minutes
    token, _ = s.sign(namespace="d", name="default", uid="u", audiences=[DEFAULT_ISSUER], expiration_seconds=600)
    assert s.verifier().verify(token).name == "default"
    clock.now = clock.start + 600          # issued (and valid from) 10 minutes from now
    token, _ = s.sign(namespace="d", name="default", uid="u", audiences=[DEFAULT_ISSUER], expiration_seconds=600)
    with pytest.raises(TokenInvalid, match="^service account token is not valid yet$"):
        s.verifier().verify(token)


def test_only_es256_is_accepted():
    """Algorithm pinning: a token that names HS256 (keyed with the public key, the classic confusion) or none
    is refused before any key is used."""
    key = ec.generate_private_key(ec.SECP256R1())
    claims = claims_of(signer(key=key).sign(namespace="d", name="default", uid="u", audiences=[DEFAULT_ISSUER],
                                            expiration_seconds=600)[0])
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    mac = base64.urlsafe_b64encode(hmac.new(pem, f"{header}.{body}".encode(), "sha256").digest()).rstrip(b"=")
    with pytest.raises(TokenInvalid, match="^unsupported token signing algorithm 'HS256'$"):
        signer(key=key).verifier().verify(f"{header}.{body}.{mac.decode()}")
    with pytest.raises(TokenInvalid, match="^unsupported token signing algorithm 'none'$"):
        signer(key=key).verifier().verify(jwt.encode(claims, None, algorithm="none"))


def test_a_token_for_another_audience_is_refused():
    s = signer()
    token, _ = s.sign(namespace="d", name="default", uid="u", audiences=["vault"], expiration_seconds=600)
    with pytest.raises(TokenInvalid, match=r"token audiences \['vault'\] is invalid for the target audiences"):
        s.verifier().verify(token)


def test_a_token_signed_by_another_key_is_refused():
    token, _ = signer().sign(namespace="d", name="default", uid="u", audiences=[DEFAULT_ISSUER],
                             expiration_seconds=600)
    with pytest.raises(TokenInvalid, match=r"^invalid token signature \(not signed by this cluster's "
                                           r"service-account key\)$"):
        signer().verifier().verify(token)


def test_a_tampered_token_is_refused():
    s = signer()
    token, _ = s.sign(namespace="d", name="default", uid="u", audiences=[DEFAULT_ISSUER], expiration_seconds=600)
    header, _, signature = token.split(".")
    forged = dict(claims_of(token), sub="system:serviceaccount:kube-system:admin")
    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenInvalid, match="invalid token signature"):
        s.verifier().verify(f"{header}.{body}.{signature}")
    with pytest.raises(TokenInvalid, match="^the token is not a JWT$"):
        s.verifier().verify("eyJ.not.base64!")
    with pytest.raises(TokenInvalid, match="^invalid token signature$"):
        s.verifier().verify(f"{header}.{body}.{signature[:40]}")


def test_the_signing_key_is_created_0600_and_kept(tmp_path):
    path = tmp_path / "pki" / "sa.key"
    key = ensure_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600 and (tmp_path / "pki" / "sa.pub").exists()
    assert ensure_signing_key(path).private_numbers() == key.private_numbers()


# ------------------------------------------------------------ issuing and authenticating against a store

def _setup():
    store = MemoryStore()
    clock = Clock()
    s = signer(clock)
    return store, clock, s, TokenIssuer(signer=s, store=store), Authenticator()


def _pod(name: str, sa: str = "") -> types_pb2.Pod:
    pod = types_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name, pod.metadata.namespace = name, "default"
    pod.spec.service_account_name = sa
    pod.spec.containers.add(name="c", image="busybox")
    return pod


def _request(**spec) -> serviceaccounts_pb2.TokenRequest:
    return serviceaccounts_pb2.TokenRequest(spec=serviceaccounts_pb2.TokenRequestSpec(**spec))


def test_token_request_and_authentication_follow_the_account_and_the_bound_pod():
    async def go():
        store, _, s, issuer, auth = _setup()
        auth.add_token_authenticator(ServiceAccountTokens(s.verifier(), store))
        sa = serviceaccount.new("default", "robot")
        sa.metadata.uid = "sa-uid-1"
        sa = await store.create(sa)
        pod = _pod("worker", "robot")
        pod.metadata.uid = "pod-uid-1"
        pod = await store.create(pod)
        bound = await issuer.create("default", "robot", _request(bound_object_ref=serviceaccounts_pb2.BoundObjectReference(
            kind="Pod", api_version="v1", name="worker", uid=pod.metadata.uid)))
        assert bound.spec.expiration_seconds == 3600 and list(bound.spec.audiences) == [DEFAULT_ISSUER]
        who = await auth.bearer(f"Bearer {bound.status.token}")
        assert who.user == "system:serviceaccount:default:robot"
        assert set(who.groups) == {"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"}
        assert claims_of(bound.status.token)["kubernetes.io"]["serviceaccount"]["uid"] == sa.metadata.uid
        plain = await issuer.create("default", "robot", _request(audiences=["vault"], expiration_seconds=7200))
        assert claims_of(plain.status.token)["aud"] == ["vault"]
        with pytest.raises(Unauthenticated, match=r"token audiences .* \(a token for system:serviceaccount:default:robot\)"):
            await auth.bearer(f"Bearer {plain.status.token}")
        # The bound pod gone: its token no longer authenticates.
        await store.delete(kinds.kind_named("Pod"), "default", "worker")
        with pytest.raises(Unauthenticated, match='pods "worker" not found'):
            await auth.bearer(f"Bearer {bound.status.token}")
        # The account deleted (and re-created: another uid): refused.
        unbound = await issuer.create("default", "robot", _request())
        assert (await auth.bearer(f"Bearer {unbound.status.token}")).user.endswith(":robot")
        await store.delete(serviceaccount.KIND, "default", "robot")
        with pytest.raises(Unauthenticated, match='serviceaccounts "robot" not found'):
            await auth.bearer(f"Bearer {unbound.status.token}")
        again = serviceaccount.new("default", "robot")
        again.metadata.uid = "sa-uid-2"
        await store.create(again)
        with pytest.raises(Unauthenticated, match=r"service account UID \(sa-uid-2\) does not match claim \(sa-uid-1\)"):
            await auth.bearer(f"Bearer {unbound.status.token}")
        with pytest.raises(Unauthenticated, match="invalid bearer token"):
            await auth.bearer("Bearer 0123456789abcdef")
    asyncio.run(go())


def test_token_request_refusals():
    async def go():
        store, _, _, issuer, _ = _setup()
        with pytest.raises(NotFound):
            await issuer.create("default", "nobody", _request())
        await store.create(serviceaccount.new("default", "robot"))
        await store.create(_pod("other", "default"))
        with pytest.raises(Invalid, match="may not specify a duration less than 10 minutes"):
            await issuer.create("default", "robot", _request(expiration_seconds=60))
        with pytest.raises(Invalid, match="pod running with different serviceaccount name"):
            await issuer.create("default", "robot", _request(
                bound_object_ref=serviceaccounts_pb2.BoundObjectReference(kind="Pod", name="other")))
        with pytest.raises(Invalid, match='Unsupported value: "Node"'):
            await issuer.create("default", "robot", _request(
                bound_object_ref=serviceaccounts_pb2.BoundObjectReference(kind="Node", name="n1")))
    asyncio.run(go())


class _GrpcContext:
    """What the gRPC guard reads of a call: its TLS auth context and its metadata."""

    def __init__(self, metadata=(), cert: bytes = b"") -> None:
        self.metadata, self.cert = metadata, cert

    def auth_context(self):
        return {"x509_pem_cert": [self.cert]} if self.cert else {}

    def invocation_metadata(self):
        return self.metadata


def test_a_bearer_token_in_grpc_metadata_authenticates_a_call():
    async def go():
        store, _, s, issuer, auth = _setup()
        auth.add_token_authenticator(ServiceAccountTokens(s.verifier(), store))
        sa = serviceaccount.new("default", "robot")
        sa.metadata.uid = "sa-uid"
        await store.create(sa)
        token = (await issuer.create("default", "robot", _request())).status.token
        who = await auth.grpc_request(_GrpcContext((("authorization", f"Bearer {token}"),)))
        assert who.user == "system:serviceaccount:default:robot"
        with pytest.raises(Unauthenticated, match="no client certificate or bearer token"):
            await auth.grpc_request(_GrpcContext())
        with pytest.raises(Unauthenticated, match="invalid bearer token"):
            await auth.grpc_request(_GrpcContext((("authorization", "Bearer nope"),)))
    asyncio.run(go())


def test_a_node_gets_only_tokens_bound_to_its_own_pods():
    """NodeRestriction: a node (system:node:NAME) asks for tokens bound to a pod on itself, nothing else."""
    from controlplane.api.errors import Forbidden
    from controlplane.auth import REQUESTER
    from skiff.pki import Identity

    async def go():
        store, _, _, issuer, _ = _setup()
        await store.create(serviceaccount.new("default", "robot"))
        for name, node in (("mine", "n1"), ("theirs", "n2")):
            pod = _pod(name, "robot")
            pod.spec.node_name = node
            await store.create(pod)
        REQUESTER.set(Identity("system:node:n1", ("system:nodes",)))

        def bound(name):
            return _request(bound_object_ref=serviceaccounts_pb2.BoundObjectReference(kind="Pod", name=name))
        assert (await issuer.create("default", "robot", bound("mine"))).status.token
        with pytest.raises(Forbidden, match='node "n1" is not allowed to request a token bound to a pod '
                                            'scheduled on a different node'):
            await issuer.create("default", "robot", bound("theirs"))
        with pytest.raises(Forbidden, match="not bound to a pod"):
            await issuer.create("default", "robot", _request())
        REQUESTER.set(Identity("admin", ("system:masters",)))
        assert (await issuer.create("default", "robot", bound("theirs"))).status.token
    asyncio.run(go())


def test_a_token_bound_to_a_pod_the_cache_has_reads_no_pod_from_the_store():
    from controlplane.store.cacher import Cacher
    from controlplane.testing import CountingStore

    async def go():
        store = CountingStore()
        cacher = Cacher(store)
        issuer = TokenIssuer(signer=signer(Clock()), store=store, cacher=cacher)
        try:
            await store.create(serviceaccount.new("default", "default"))
            pod = _pod("web")
            pod.metadata.uid, pod.spec.node_name = "uid-1", "n1"
            pod = await store.create(pod)
            await cacher.list(kinds.kind_named("Pod"), "default")     # the cache has it
            store.reset()

            def bound_to(uid: str):
                return _request(bound_object_ref=serviceaccounts_pb2.BoundObjectReference(
                    kind="Pod", api_version="v1", name="web", uid=uid))
            token = await issuer.create("default", "default", bound_to("uid-1"))
            assert claims_of(token.status.token)["kubernetes.io"]["pod"] == {"name": "web", "uid": "uid-1"}
            assert store.reads("Pod") == 0
            # Another uid than the cache's (a pod of the same name made again): the store decides.
            with pytest.raises(Conflict, match="does not match the UID in record"):
                await issuer.create("default", "default", bound_to("uid-2"))
            assert store.reads("Pod") == 1
        finally:
            await cacher.close()
    asyncio.run(asyncio.wait_for(go(), 30))
