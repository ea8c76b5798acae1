"""The node authorizer (controlplane/nodeauthorizer.py): a node reads only the
Secrets and ConfigMaps of the pods bound to it, writes only its own Node."""
from __future__ import annotations

import asyncio

from controlplane.api.guard import attributes, selected_name
from controlplane.auth import Attributes
from controlplane.nodeauthorizer import NodeAuthorizer
from controlplane.store import MemoryStore
from controlplane.testing import CountingStore
from proto.skiff.v1 import api_pb2, types_pb2
from skiff.pki import Identity

N1 = Identity("system:node:n1", ("system:nodes",))
N2 = Identity("system:node:n2", ("system:nodes",))


def decide(identity: Identity, **a) -> bool | None:
    async def go():
        store = MemoryStore()
        pod = types_pb2.Pod(kind="Pod", api_version="v1")
        pod.metadata.name, pod.metadata.namespace = "web", "default"
        pod.spec.node_name = "n1"
        c = pod.spec.containers.add(name="c", image="busybox")
        c.env.add(name="PW").value_from.secret_key_ref.name = "db"
        pod.spec.volumes.add(name="cfg").config_map.name = "settings"
        await store.create(pod)
        return await NodeAuthorizer(store).decide(identity, Attributes(**a))
    return asyncio.run(go())


def test_a_node_reads_the_secrets_and_configmaps_of_its_own_pods_only():
    assert decide(N1, verb="get", resource="secrets", namespace="default", name="db") is True
    assert decide(N1, verb="watch", resource="configmaps", namespace="default", name="settings") is True
    assert decide(N2, verb="get", resource="secrets", namespace="default", name="db") is False
    assert decide(N1, verb="get", resource="secrets", namespace="default", name="other") is False
    assert decide(N1, verb="list", resource="secrets", namespace="default") is False
    assert decide(N1, verb="update", resource="secrets", namespace="default", name="db") is False


def test_a_node_writes_its_own_node_only():
    assert decide(N1, verb="update", resource="nodes", subresource="status", name="n1") is True
    assert decide(N1, verb="patch", resource="nodes", name="n2") is False
    assert decide(N1, verb="list", resource="pods") is True


def test_anyone_else_gets_no_opinion():
    assert decide(Identity("alice"), verb="get", resource="secrets", namespace="default", name="db") is None


def test_a_watch_of_one_object_names_it():
    assert selected_name("metadata.name=db") == "db" and selected_name("metadata.name==db") == "db"
    assert selected_name("metadata.name=db,x=y") == "" and selected_name("spec.nodeName=n1") == ""
    watch = api_pb2.WatchRequest(kind="Secret", namespace="default", field_selector="metadata.name=db")
    assert attributes("Watch", watch) == Attributes(verb="watch", resource="secrets", namespace="default", name="db")


def test_a_node_gets_tokens_only_for_the_accounts_its_pods_run_as():
    async def go(identity: Identity, account: str) -> bool | None:
        store = MemoryStore()
        pod = types_pb2.Pod(kind="Pod", api_version="v1")
        pod.metadata.name, pod.metadata.namespace = "web", "default"
        pod.spec.node_name, pod.spec.service_account_name = "n1", "robot"
        pod.spec.containers.add(name="c", image="busybox")
        await store.create(pod)
        return await NodeAuthorizer(store).decide(identity, Attributes(
            verb="create", resource="serviceaccounts", subresource="token", namespace="default", name=account))
    assert asyncio.run(go(N1, "robot")) is True
    assert asyncio.run(go(N1, "admin")) is False
    assert asyncio.run(go(N2, "robot")) is False


def _pod(node: str, secret: str) -> types_pb2.Pod:
    pod = types_pb2.Pod(kind="Pod", api_version="v1")
    pod.metadata.name, pod.metadata.namespace = f"on-{node}", "default"
    pod.spec.node_name = node
    c = pod.spec.containers.add(name="c", image="busybox")
    c.env.add(name="PW").value_from.secret_key_ref.name = secret
    return pod


def test_a_decision_reads_the_pods_from_the_cache_not_the_store():
    async def go():
        store = CountingStore()
        await store.create(_pod("n1", "db"))
        authz = NodeAuthorizer(store)
        try:
            secret = Attributes(verb="get", resource="secrets", namespace="default", name="db")
            assert await authz.decide(N1, secret) is True   # the cache's first list
            store.reset()
            for _ in range(3):
                assert await authz.decide(N1, secret) is True
                assert await authz.decide(N1, Attributes(verb="create", resource="serviceaccounts",
                                                         subresource="token", namespace="default",
                                                         name="default")) is True
            assert store.reads(verb="list") == 0
            status = Attributes(verb="update", resource="pods", subresource="status", namespace="default",
                                name="on-n1")
            assert await authz.decide(N1, status) is True      # a node's status write: its own pod
            assert store.reads() == 0
            assert await authz.decide(N2, status) is False     # another node's: refused after a store read
            assert store.reads("Pod", verb="get") == 1
        finally:
            await authz.stop()
    asyncio.run(asyncio.wait_for(go(), 30))


def test_a_pod_the_cache_has_not_seen_is_read_from_the_store_before_a_refusal():
    from controlplane.api.informers import LoopbackInformers
    from controlplane.api.registry import Registry

    async def go():
        store = CountingStore()
        await store.create(_pod("n1", "db"))
        stale = LoopbackInformers(Registry(store=MemoryStore()))   # a cache that never sees the pod
        authz = NodeAuthorizer(store, informers=stale)
        try:
            assert await authz.decide(N1, Attributes(verb="get", resource="secrets", namespace="default",
                                                     name="db")) is True
            assert store.reads(verb="list") == 1
            assert await authz.decide(N2, Attributes(verb="get", resource="secrets", namespace="default",
                                                     name="db")) is False
            assert await authz.decide(N1, Attributes(verb="update", resource="pods", subresource="status",
                                                     namespace="default", name="on-n1")) is True
        finally:
            await authz.stop()
    asyncio.run(asyncio.wait_for(go(), 30))
