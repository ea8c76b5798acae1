"""The gRPC API in secure mode (decision 32): TLS with the cluster CA, a client
certificate required, every call authorized. A real gRPC server and clients over
loopback; the store is in memory (what is under test is the door, not etcd)."""
from __future__ import annotations

import asyncio

import pytest

from controlplane.api.server import ApiServer
from controlplane.auth import Authenticator, Authorizer, Guard
from controlplane.metrics import Metrics
from controlplane.store import MemoryStore
from proto.skiff.v1 import types_pb2
from skiff import pki
from skiff.client import ApiClient, ApiError, Unavailable


@pytest.fixture(scope="module")
def cluster_pki(tmp_path_factory) -> pki.ClusterPki:
    files = pki.ClusterPki(tmp_path_factory.mktemp("secure") / "pki")
    files.ensure_cluster(api_addresses=[], service_cluster_ip="10.96.0.1", node_names=["n1"])
    files.issue_user("alice", user="alice", groups=["dev"])
    return files


def serve_and(cluster_pki: pki.ClusterPki, body):
    async def main():
        server = ApiServer(store=MemoryStore(), metrics=Metrics(), listen="127.0.0.1:0",
                           tls=cluster_pki.credentials("apiserver"),
                           guard=Guard(Authenticator(), Authorizer()))
        port = await server.start()
        try:
            return await asyncio.wait_for(body(f"127.0.0.1:{port}"), 30)
        finally:
            await server.stop(grace=0)
    return asyncio.run(main())


def _namespace(name: str) -> types_pb2.Namespace:
    ns = types_pb2.Namespace(api_version="v1", kind="Namespace")
    ns.metadata.name = name
    return ns


def test_the_admin_certificate_may_do_anything(cluster_pki):
    async def body(address):
        async with ApiClient(address, credentials=cluster_pki.credentials("admin")) as c:
            await c.create(_namespace("team"))
            names = [n.metadata.name for n in (await c.list("Namespace", ""))[0]]
            assert "team" in names
    serve_and(cluster_pki, body)


def test_a_node_certificate_is_allowed(cluster_pki):
    async def body(address):
        async with ApiClient(address, credentials=cluster_pki.credentials("node-n1")) as c:
            await c.list("Pod", "default")
    serve_and(cluster_pki, body)


def test_a_user_without_a_grant_is_forbidden_in_kubernetes_words(cluster_pki):
    async def body(address):
        async with ApiClient(address, credentials=cluster_pki.credentials("alice")) as c:
            with pytest.raises(ApiError) as err:
                await c.list("Pod", "default")
            assert err.value.message == ('pods is forbidden: User "alice" cannot list resource "pods" in API group '
                                         '"" in the namespace "default"')
            with pytest.raises(ApiError, match='User "alice" cannot create resource "pods/exec"'):
                async for _ in c.exec("web", ["sh"], "default"):
                    pass
    serve_and(cluster_pki, body)


def test_a_client_without_a_certificate_is_refused(cluster_pki):
    async def body(address):
        async with ApiClient(address, credentials=pki.Credentials(ca=cluster_pki.ca_file.read_bytes())) as c:
            with pytest.raises(Unavailable):
                await c.list("Pod", "default", timeout=5)
        async with ApiClient(address) as plain:   # no TLS at all
            with pytest.raises(Unavailable):
                await plain.list("Pod", "default", timeout=5)
    serve_and(cluster_pki, body)


def test_a_certificate_from_another_ca_is_refused_and_the_unknown_server_named(cluster_pki, tmp_path):
    other = pki.ClusterPki(tmp_path / "other")
    other.ensure_cluster(api_addresses=[], service_cluster_ip="10.96.0.1")
    server_print = pki.fingerprint(cluster_pki.cert_file("apiserver").read_bytes())

    async def body(address):
        async with ApiClient(address, credentials=other.credentials("admin")) as c:
            with pytest.raises(ApiError) as err:
                await c.list("Pod", "default", timeout=5)
            assert f"SHA-256 fingerprint {server_print}" in err.value.message
        # Our CA, but their client certificate: the server refuses it.
        mixed = pki.Credentials(ca=cluster_pki.ca_file.read_bytes(), cert=other.cert_file("admin").read_bytes(),
                                key=other.key_file("admin").read_bytes())
        async with ApiClient(address, credentials=mixed) as c:
            with pytest.raises(Unavailable):
                await c.list("Pod", "default", timeout=5)
    serve_and(cluster_pki, body)


def test_access_review_for_oneself_and_by_impersonation(cluster_pki):
    async def body(address):
        async with ApiClient(address, credentials=cluster_pki.credentials("admin")) as admin:
            assert await admin.access_review(verb="delete", resource="nodes")
            assert not await admin.access_review(verb="list", resource="pods", namespace="default", user="alice")
        async with ApiClient(address, credentials=cluster_pki.credentials("alice")) as alice:
            assert not await alice.access_review(verb="list", resource="pods", namespace="default")
            with pytest.raises(ApiError, match='User "alice" cannot impersonate resource "users"'):
                await alice.access_review(verb="list", resource="pods", user="admin", groups=("system:masters",))
    serve_and(cluster_pki, body)


def test_loading_and_building_images_are_separate_rights(cluster_pki):
    """`create nodes/images` lets a client load an image into a node; a build runs its RUN steps
    on the node, so it needs `create nodes/build` (cluster-admin has both)."""
    import grpc

    from controlplane.auth import default_rules
    from proto.skiff.v1 import images_pb2, images_pb2_grpc

    def loader(identity, a):   # alice may load images, nothing more
        return True if identity.user == "alice" and (a.resource, a.subresource) == ("nodes", "images") else None

    async def main():
        server = ApiServer(store=MemoryStore(), metrics=Metrics(), listen="127.0.0.1:0",
                           tls=cluster_pki.credentials("apiserver"),
                           guard=Guard(Authenticator(), Authorizer([loader, *default_rules()])))
        port = await server.start()
        outcomes = {}
        try:
            for who in ("alice", "admin"):
                async with ApiClient(f"127.0.0.1:{port}", credentials=cluster_pki.credentials(who)) as c:
                    c.stub   # opens the channel with the credentials
                    stub = images_pb2_grpc.ImagesStub(c._channel)
                    for method, first in (("Load", images_pb2.ImageLoadChunk()),
                                          ("Build", images_pb2.ImageBuildChunk(
                                              options=images_pb2.ImageBuildOptions(dockerfile="FROM scratch\n")))):
                        async def one():
                            yield first
                        try:
                            [m async for m in getattr(stub, method)(one())]
                        except grpc.aio.AioRpcError as exc:
                            outcomes[who, method] = (exc.code(), exc.details())
        finally:
            await server.stop(grace=0)
        return outcomes
    outcomes = asyncio.run(main())
    # Past the door, with no node to take it: FAILED_PRECONDITION; refused at the door: PERMISSION_DENIED.
    no_node = "no Ready node serves images to its peers (the agents' --registry-port) to load into"
    assert outcomes["alice", "Load"] == (grpc.StatusCode.FAILED_PRECONDITION, no_node)
    code, message = outcomes["alice", "Build"]
    assert code == grpc.StatusCode.PERMISSION_DENIED and 'cannot create resource "nodes/build"' in message, message
    assert outcomes["admin", "Build"] == (grpc.StatusCode.FAILED_PRECONDITION,
                                          no_node.replace("to load into", "to build on"))
