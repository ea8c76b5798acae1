"""The store against a real etcd: CAS, watch resume, re-list after compaction."""
import asyncio

import pytest

from controlplane.store import AlreadyExists, Compacted, Conflict, NotFound, Store
from proto.skiff.v1 import types_pb2
from skiff.api import kinds

pytestmark = pytest.mark.etcd
POD = kinds.kind_named("Pod")
NODE = kinds.kind_named("Node")


def pod(name: str, image: str = "busybox") -> types_pb2.Pod:
    p = types_pb2.Pod(kind="Pod", api_version="v1")
    p.metadata.name, p.metadata.namespace = name, "default"
    p.spec.containers.add(name="c", image=image)
    return p


def run(etcd, prefix, body):
    async def main():
        store = Store(endpoint=etcd, root=prefix)
        try:
            return await asyncio.wait_for(body(store), 30)
        finally:
            await store.close()
    return asyncio.run(main())


def test_create_get_and_duplicate(etcd, etcd_prefix):
    async def body(store):
        created = await store.create(pod("a"))
        got = await store.get(POD, "default", "a")
        assert got.metadata.resource_version == created.metadata.resource_version != ""
        assert got.spec.containers[0].image == "busybox"
        with pytest.raises(AlreadyExists, match='Pod "a" in namespace "default" already exists'):
            await store.create(pod("a"))
        with pytest.raises(NotFound):
            await store.get(POD, "default", "missing")
    run(etcd, etcd_prefix, body)


def test_stale_resource_version_is_a_conflict_not_a_lost_update(etcd, etcd_prefix):
    async def body(store):
        first = await store.create(pod("a"))
        reader_one = await store.get(POD, "default", "a")
        reader_two = await store.get(POD, "default", "a")
        reader_one.spec.containers[0].image = "one"
        await store.update(reader_one)
        reader_two.spec.containers[0].image = "two"
        with pytest.raises(Conflict):
            await store.update(reader_two)
        now = await store.get(POD, "default", "a")
        assert now.spec.containers[0].image == "one"
        assert int(now.metadata.resource_version) > int(first.metadata.resource_version)
        with pytest.raises(Conflict):
            await store.delete(POD, "default", "a", resource_version=first.metadata.resource_version)
        gone = await store.delete(POD, "default", "a", resource_version=now.metadata.resource_version)
        assert gone.spec.containers[0].image == "one"
        with pytest.raises(NotFound):
            await store.update(now)
    run(etcd, etcd_prefix, body)


def test_cluster_scoped_key_uses_underscore_namespace(etcd, etcd_prefix):
    async def body(store):
        node = types_pb2.Node()
        node.metadata.name = "n1"
        await store.create(node)
        assert store.key(NODE, "", "n1") == f"{etcd_prefix}/nodes/_/n1".encode()
        items, _ = await store.list(NODE)
        assert [n.metadata.name for n in items] == ["n1"]
    run(etcd, etcd_prefix, body)


def test_watch_resumes_from_a_revision(etcd, etcd_prefix):
    async def body(store):
        await store.create(pod("before"))
        items, revision = await store.list(POD)
        assert [p.metadata.name for p in items] == ["before"]
        await store.create(pod("a"))
        a = await store.get(POD, "default", "a")
        a.spec.containers[0].image = "v2"
        await store.update(a)
        await store.delete(POD, "default", "a")
        seen = []
        async for event in store.watch(POD, after_revision=revision):
            seen.append((event.type, event.obj.metadata.name, event.obj.spec.containers[0].image
                         if event.obj.spec.containers else ""))
            if len(seen) == 3:
                break
        # Nothing from before the list's revision; the delete carries the last state.
        assert seen == [("ADDED", "a", "busybox"), ("MODIFIED", "a", "v2"), ("DELETED", "a", "v2")]
    run(etcd, etcd_prefix, body)


def test_watch_from_compacted_revision_raises_and_relist_recovers(etcd, etcd_prefix):
    async def body(store):
        _, old = await store.list(POD)
        await store.create(pod("x"))
        p = await store.get(POD, "default", "x")
        p.spec.containers[0].image = "y"
        await store.update(p)
        current = await store.revision()
        await store.compact(current)
        with pytest.raises(Compacted):
            async for _ in store.watch(POD, after_revision=old):
                pass
        items, revision = await store.list(POD)
        assert [(i.metadata.name, i.spec.containers[0].image) for i in items] == [("x", "y")]
        await store.create(pod("z"))
        async for event in store.watch(POD, after_revision=revision):
            assert (event.type, event.obj.metadata.name) == ("ADDED", "z")
            break
    run(etcd, etcd_prefix, body)


def test_guaranteed_update_retries_on_conflict(etcd, etcd_prefix):
    async def body(store):
        await store.create(pod("g"))
        calls = []

        def mutate(p):
            calls.append(1)
            p.metadata.labels["n"] = str(len(calls))
            return p

        racer = await store.get(POD, "default", "g")
        racer.metadata.labels["racer"] = "yes"

        real_get = store.get

        async def get_then_race(*a, **kw):
            obj = await real_get(*a, **kw)
            if not calls:  # someone else writes between our first read and our write
                await store.update(racer)
            return obj
        store.get = get_then_race
        result = await store.guaranteed_update(POD, "default", "g", mutate)
        assert result.metadata.labels["racer"] == "yes"
        assert len(calls) == 2
    run(etcd, etcd_prefix, body)


def event(name: str) -> types_pb2.Event:
    e = types_pb2.Event(kind="Event", api_version="v1", reason="Tested", message="m", count=1)
    e.metadata.name, e.metadata.namespace = name, "default"
    return e


def test_events_expire_after_the_event_ttl_and_other_objects_do_not(etcd, etcd_prefix):
    EVENT = kinds.kind_named("Event")

    async def body(store):
        store.event_ttl = 2
        await store.create(pod("keeps"))
        created = await store.create(event("fades"))
        created.count = 2   # an update keeps it on its lease (a put without one would detach it)
        await store.update(created)
        for _ in range(100):   # etcd expires leases to the second: up to ttl + window + 1 s
            if not (await store.list(EVENT, "default"))[0]:
                break
            await asyncio.sleep(0.1)
        return (await store.list(EVENT, "default"))[0], await store.get(POD, "default", "keeps")
    events, kept = run(etcd, etcd_prefix, body)
    assert events == [] and kept.metadata.name == "keeps"
