"""The Store contract, run against both implementations: MemoryStore and the
etcd Store (real etcd). Whatever FakeApiClient's tests rely on is proved here
to be what etcd does."""
import asyncio

import pytest

from controlplane.store import (AlreadyExists, Compacted, Conflict, FutureRevision, InvalidRevision, MemoryStore,
                               NotFound, Store, TooLarge)
from proto.skiff.v1 import types_pb2
from skiff.api import kinds

POD = kinds.kind_named("Pod")
NODE = kinds.kind_named("Node")


@pytest.fixture(params=["memory", pytest.param("etcd", marks=pytest.mark.etcd)])
def make_store(request):
    if request.param == "memory":
        return MemoryStore
    endpoint = request.getfixturevalue("etcd")
    prefix = request.getfixturevalue("etcd_prefix")
    return lambda: Store(endpoint=endpoint, root=prefix)


def run(make_store, body):
    async def main():
        store = make_store()
        try:
            return await asyncio.wait_for(body(store), 30)
        finally:
            await store.close()
    return asyncio.run(main())


def pod(name: str, image: str = "busybox", namespace: str = "default") -> types_pb2.Pod:
    p = types_pb2.Pod(kind="Pod", api_version="v1")
    p.metadata.name, p.metadata.namespace = name, namespace
    p.spec.containers.add(name="c", image=image)
    return p


async def collect(stream, n):
    out = []
    async for event in stream:
        out.append(event)
        if len(out) == n:
            break
    return out


def test_writes_move_the_revision_and_resource_version_is_the_mod_revision(make_store):
    async def body(store):
        start = await store.revision()
        created = await store.create(pod("a"))
        assert int(created.metadata.resource_version) == start + 1 == await store.revision()
        got = await store.get(POD, "default", "a")
        assert got.metadata.resource_version == created.metadata.resource_version
        got.spec.containers[0].image = "v2"
        updated = await store.update(got)
        assert int(updated.metadata.resource_version) == start + 2
        items, revision = await store.list(POD)
        assert revision == start + 2 and [i.metadata.resource_version for i in items] == [str(start + 2)]
        gone = await store.delete(POD, "default", "a")
        assert int(gone.metadata.resource_version) == start + 3 and gone.spec.containers[0].image == "v2"
    run(make_store, body)


def test_errors_conflict_already_exists_not_found(make_store):
    async def body(store):
        first = await store.create(pod("a"))
        with pytest.raises(AlreadyExists, match='Pod "a" in namespace "default" already exists'):
            await store.create(pod("a"))
        one, two = await store.get(POD, "default", "a"), await store.get(POD, "default", "a")
        one.spec.containers[0].image = "one"
        await store.update(one)
        two.spec.containers[0].image = "two"
        with pytest.raises(Conflict):
            await store.update(two)
        assert (await store.get(POD, "default", "a")).spec.containers[0].image == "one"
        with pytest.raises(Conflict):
            await store.delete(POD, "default", "a", resource_version=first.metadata.resource_version)
        unguarded = await store.get(POD, "default", "a")
        unguarded.metadata.resource_version = ""
        await store.update(unguarded)   # no resourceVersion: only "must exist"
        await store.delete(POD, "default", "a")
        for call in (store.get(POD, "default", "a"), store.delete(POD, "default", "a"), store.update(one)):
            with pytest.raises(NotFound):
                await call
    run(make_store, body)


def test_list_by_namespace_and_cluster_scope(make_store):
    async def body(store):
        await store.create(pod("a", namespace="one"))
        await store.create(pod("b", namespace="two"))
        node = types_pb2.Node()
        node.metadata.name = "n1"
        await store.create(node)
        assert sorted(p.metadata.name for p in (await store.list(POD))[0]) == ["a", "b"]
        assert [p.metadata.name for p in (await store.list(POD, "two"))[0]] == ["b"]
        assert [n.metadata.name for n in (await store.list(NODE))[0]] == ["n1"]
        assert (await store.get(NODE, "", "n1")).metadata.name == "n1"
    run(make_store, body)


def test_watch_from_a_revision_delivers_later_changes_in_order_with_prev(make_store):
    async def body(store):
        await store.create(pod("before"))
        _, revision = await store.list(POD)
        await store.create(pod("a"))
        a = await store.get(POD, "default", "a")
        a.spec.containers[0].image = "v2"
        await store.update(a)
        await store.delete(POD, "default", "a")
        node = types_pb2.Node()
        node.metadata.name = "other-kind"
        await store.create(node)
        events = await collect(store.watch(POD, after_revision=revision), 3)
        assert [(e.type, e.obj.metadata.name, e.obj.spec.containers[0].image) for e in events] == [
            ("ADDED", "a", "busybox"), ("MODIFIED", "a", "v2"), ("DELETED", "a", "v2")]
        assert [e.revision for e in events] == [revision + 1, revision + 2, revision + 3]
        assert events[2].obj.metadata.resource_version == str(revision + 3)
        assert events[1].prev.spec.containers[0].image == "busybox"
        assert events[2].prev.spec.containers[0].image == "v2"

        # A live watch sees a change made after it started.
        stream = store.watch(POD, "default", after_revision=await store.revision())
        later = asyncio.ensure_future(collect(stream, 1))
        await asyncio.sleep(0.2)
        await store.create(pod("late"))
        assert [(e.type, e.obj.metadata.name) for e in await later] == [("ADDED", "late")]
    run(make_store, body)


def test_watch_from_a_compacted_revision_raises_and_a_relist_recovers(make_store):
    async def body(store):
        _, old = await store.list(POD)
        await store.create(pod("x"))
        p = await store.get(POD, "default", "x")
        p.spec.containers[0].image = "y"
        await store.update(p)
        await store.compact(await store.revision())
        with pytest.raises(Compacted):
            await collect(store.watch(POD, after_revision=old), 1)
        items, revision = await store.list(POD)
        assert [(i.metadata.name, i.spec.containers[0].image) for i in items] == [("x", "y")]
        await store.create(pod("z"))
        events = await collect(store.watch(POD, after_revision=revision), 1)
        assert (events[0].type, events[0].obj.metadata.name) == ("ADDED", "z")
    run(make_store, body)


def test_guaranteed_update_retries_on_conflict_and_none_writes_nothing(make_store):
    async def body(store):
        created = await store.create(pod("g"))
        unchanged = await store.guaranteed_update(POD, "default", "g", lambda p: None)
        assert unchanged.metadata.resource_version == created.metadata.resource_version
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
            if not calls:
                await store.update(racer)
            return obj
        store.get = get_then_race
        result = await store.guaranteed_update(POD, "default", "g", mutate)
        assert result.metadata.labels["racer"] == "yes" and len(calls) == 2
    run(make_store, body)


def test_returned_objects_are_copies(make_store):
    async def body(store):
        obj = pod("c")
        created = await store.create(obj)
        obj.spec.containers[0].image = "changed-after"
        created.spec.containers[0].image = "changed-too"
        assert (await store.get(POD, "default", "c")).spec.containers[0].image == "busybox"
    run(make_store, body)


def test_an_object_beyond_the_request_limit_is_refused_naming_the_limit_and_the_field(make_store):
    # etcd's own refusal read "received message larger than max (2097474 vs. 2097152)".
    async def body(store):
        _, start = await store.list(POD)
        big = pod("big")
        big.metadata.annotations["a"] = "x" * 2_000_000
        for write in (store.create, store.check_size):
            with pytest.raises(TooLarge) as info:
                result = write(big)
                if asyncio.iscoroutine(result):
                    await result
            message = str(info.value)
            assert 'Pod "big" in namespace "default" is too large' in message
            assert "the limit is 1568768 bytes" in message and "metadata.annotations" in message
        with pytest.raises(NotFound):
            await store.get(POD, "default", "big")
        await store.create(pod("big"))
        with pytest.raises(TooLarge):
            await store.update(big)
        assert not (await store.get(POD, "default", "big")).metadata.annotations
        await store.create(pod("after"))   # the revision moved by one write, not by the refusals
        assert [e.obj.metadata.name async for e in _first(store.watch(POD, after_revision=start), 2)] == \
            ["big", "after"]
    run(make_store, body)


async def _first(stream, n):
    count = 0
    async for event in stream:
        yield event
        count += 1
        if count == n:
            break


@pytest.mark.parametrize("revision, error", [(-9999999999999999999, InvalidRevision),
                                             (99999999999999999999999, FutureRevision)])
def test_a_watch_from_an_impossible_revision_is_refused(make_store, revision, error):
    async def body(store):
        with pytest.raises(error, match=f"resource_version {revision} "):
            async for _ in store.watch(POD, after_revision=revision):
                pass
    run(make_store, body)
