"""One contract, two clients: FakeApiClient (the registry over a MemoryStore, in
process) and ApiClient against a real control plane over etcd. Every case runs
against both, so a controller test written against the fake means something
against the real API."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

import pytest

from controlplane.store import MemoryStore, Store
from controlplane.testing import FakeApiClient
from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.client import AlreadyExists, ApiClient, Conflict, Gone, Invalid, NotFound


@dataclass
class Side:
    connect: Callable[[], object]                 # a new client (inside the test's event loop)
    compact: Callable[[], Awaitable[None]]        # drop the store's history up to now


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.etcd)])
def side(request) -> Side:
    if request.param == "fake":
        store = MemoryStore()

        async def compact_memory() -> None:
            await store.compact(await store.revision())
        return Side(connect=lambda: FakeApiClient(store), compact=compact_memory)
    info = request.getfixturevalue("controlplane_info")

    async def compact_etcd() -> None:
        store = Store(endpoint=info.etcd, root=info.etcd_prefix)
        try:
            await store.compact(await store.revision())
        finally:
            await store.close()
    return Side(connect=lambda: ApiClient(info.address), compact=compact_etcd)


def run(side: Side, body):
    async def main():
        client = side.connect()
        try:
            await asyncio.wait_for(body(client), 30)
        finally:
            await client.close()
    asyncio.run(main())


def pod(name: str, **labels: str) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = name
    p.metadata.labels.update(labels)
    p.spec.containers.add(name="c", image="busybox")
    p.spec.scheduler_name = "skiff-test-scheduler"  # keep a real scheduler out of it
    return p


async def take(stream, n: int) -> list[tuple[str, str, str]]:
    """The next n events as (type, name, resourceVersion); the stream stays open."""
    out = []
    while len(out) < n:
        event_type, obj, rv = await asyncio.wait_for(anext(stream), 10)
        if obj is not None:
            out.append((event_type, obj.metadata.name, rv))
    return out


def test_resource_version_moves_on_every_write(side):
    async def body(c):
        created = await c.create(pod("a"))
        rv0 = int(created.metadata.resource_version)
        assert created.metadata.uid and created.status.phase == "Pending"
        created.metadata.labels["v"] = "1"
        updated = await c.update(created)
        rv1 = int(updated.metadata.resource_version)
        updated.status.message = "hello"
        status = await c.update_status(updated)
        rv2 = int(status.metadata.resource_version)
        assert rv0 < rv1 < rv2
        got = await c.get("Pod", "a")
        assert got.metadata.resource_version == str(rv2) and got.metadata.labels["v"] == "1"
        assert got.status.message == "hello"
        _, list_rv = await c.list("Pod")
        assert int(list_rv) >= rv2
    run(side, body)


def test_stale_resource_version_is_a_conflict(side):
    async def body(c):
        first = await c.create(pod("a"))
        fresh = meta.copy(first)
        fresh.metadata.labels["by"] = "one"
        await c.update(fresh)
        stale = meta.copy(first)
        stale.metadata.labels["by"] = "two"
        with pytest.raises(Conflict):
            await c.update(stale)
        with pytest.raises(Conflict):
            await c.update_status(stale)
        with pytest.raises(Conflict):
            await c.bind("a", "node-1", resource_version=first.metadata.resource_version)
        with pytest.raises(Conflict):
            await c.delete("Pod", "a", precondition_uid="not-its-uid")
        assert (await c.get("Pod", "a")).metadata.labels["by"] == "one"
    run(side, body)


def test_already_exists_not_found_and_invalid(side):
    async def body(c):
        await c.create(pod("a"))
        with pytest.raises(AlreadyExists):
            await c.create(pod("a"))
        with pytest.raises(NotFound, match='Pod "nope" in namespace "default" not found'):
            await c.get("Pod", "nope")
        with pytest.raises(NotFound):
            await c.delete("Pod", "nope")
        with pytest.raises(NotFound):
            await c.update(pod("nope"))
        empty = types_pb2.Pod()
        empty.metadata.name = "empty"
        with pytest.raises(Invalid) as err:
            await c.create(empty)
        assert err.value.field_path.startswith("spec.containers")
        with pytest.raises(Invalid) as err:
            await c.list("Gizmo")
        assert err.value.field_path == "kind"
    run(side, body)


def test_apply_creates_configures_and_leaves_unchanged(side):
    async def body(c):
        _, result = await c.apply(pod("a", app="web"))
        assert result == "created"
        _, result = await c.apply(pod("a", app="web"))
        assert result == "unchanged"
        stored, result = await c.apply(pod("a", app="db"))
        assert result == "configured" and stored.metadata.labels["app"] == "db"
        dry, result = await c.apply(pod("b"), dry_run=True)
        assert result == "created"
        with pytest.raises(NotFound):
            await c.get("Pod", "b")
    run(side, body)


def test_watch_from_a_revision_delivers_exactly_the_later_changes_in_order(side):
    async def body(c):
        await c.create(pod("before"))
        _, rv = await c.list("Pod")
        a = await c.create(pod("a"))
        a.metadata.labels["v"] = "2"
        await c.update(a)
        await c.delete("Pod", "a")
        stream = c.watch("Pod", resource_version=rv)
        try:
            events = await take(stream, 3)
            assert [(t, n) for t, n, _ in events] == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
            revisions = [int(r) for _, _, r in events]
            assert revisions == sorted(revisions) and revisions[0] > int(rv)
            await c.create(pod("later"))
            assert [(t, n) for t, n, _ in await take(stream, 1)] == [("ADDED", "later")]
        finally:
            await stream.aclose()
        # Without a revision: the current objects first, as ADDED.
        stream = c.watch("Pod")
        try:
            assert sorted(n for _, n, _ in await take(stream, 2)) == ["before", "later"]
        finally:
            await stream.aclose()
    run(side, body)


def test_watch_from_a_compacted_revision_is_gone(side):
    async def body(c):
        _, old = await c.list("Pod")
        created = await c.create(pod("x"))
        created.metadata.labels["v"] = "2"
        await c.update(created)
        await side.compact()
        # If the compaction lands while the API's watch cache is still applying those writes, the
        # cache lists again and ends its watchers cleanly ("resume from your revision", as an
        # informer does); the resumed watch is the one told Gone. An event instead is a failure.
        with pytest.raises(Gone):
            for _ in range(3):
                try:
                    await take(c.watch("Pod", resource_version=old), 1)
                    break
                except StopAsyncIteration:
                    continue
        items, rv = await c.list("Pod")            # the informer's way back: list again
        assert [i.metadata.labels["v"] for i in items] == ["2"]
        stream = c.watch("Pod", resource_version=rv)
        try:
            await c.create(pod("y"))
            assert [(t, n) for t, n, _ in await take(stream, 1)] == [("ADDED", "y")]
        finally:
            await stream.aclose()
    run(side, body)


def test_label_and_field_selectors_on_list(side):
    async def body(c):
        await c.create(pod("web-1", app="web", tier="front"))
        await c.create(pod("web-2", app="web"))
        await c.create(pod("db-1", app="db"))
        await c.bind("web-2", "node-1")

        async def names(**selectors):
            items, _ = await c.list("Pod", "default", **selectors)
            return sorted(i.metadata.name for i in items)
        assert await names(label_selector="app=web") == ["web-1", "web-2"]
        assert await names(label_selector="app=web,tier!=front") == ["web-2"]
        assert await names(label_selector="app in (db,cache)") == ["db-1"]
        assert await names(field_selector="spec.nodeName=node-1") == ["web-2"]
        assert await names(field_selector="spec.nodeName!=") == ["web-2"]
        assert await names(field_selector="metadata.name=db-1") == ["db-1"]
        assert await names(label_selector="app=web", field_selector="spec.nodeName=") == ["web-1"]
        assert (await c.list("Pod", "elsewhere"))[0] == []
    run(side, body)


def test_an_object_leaving_a_watchers_selector_is_deleted_to_it(side):
    async def body(c):
        _, rv = await c.list("Pod")
        labelled = c.watch("Pod", label_selector="app=web", resource_version=rv)
        on_node = c.watch("Pod", field_selector="spec.nodeName=node-1", resource_version=rv)
        try:
            p = await c.create(pod("p", app="web"))
            await c.create(pod("other", app="db"))
            assert [(t, n) for t, n, _ in await take(labelled, 1)] == [("ADDED", "p")]
            p.metadata.labels["app"] = "db"                  # leaves app=web
            p = await c.update(p)
            assert [(t, n) for t, n, _ in await take(labelled, 1)] == [("DELETED", "p")]
            p.metadata.labels["app"] = "web"                 # comes back
            p = await c.update(p)
            assert [(t, n) for t, n, _ in await take(labelled, 1)] == [("ADDED", "p")]
            await c.bind("other", "node-1")                  # enters spec.nodeName=node-1
            assert [(t, n) for t, n, _ in await take(on_node, 1)] == [("ADDED", "other")]
            await c.delete("Pod", "other", grace_period_seconds=0)
            assert [(t, n) for t, n, _ in await take(on_node, 1)] == [("DELETED", "other")]
        finally:
            await labelled.aclose()
            await on_node.aclose()
    run(side, body)


def test_bind_sets_the_node_once(side):
    async def body(c):
        created = await c.create(pod("p"))
        bound = await c.bind("p", "node-1", resource_version=created.metadata.resource_version)
        assert bound.spec.node_name == "node-1"
        condition = meta.get_condition(bound.status.conditions, "PodScheduled")
        assert condition is not None and condition.status == "True"
        with pytest.raises(Conflict):
            await c.bind("p", "node-2")
        with pytest.raises(NotFound):
            await c.bind("ghost", "node-1")
        assert (await c.get("Pod", "p")).spec.node_name == "node-1"
    run(side, body)


def test_graceful_pod_delete_marks_a_bound_pod_and_grace_zero_removes_it(side):
    async def body(c):
        await c.create(pod("unbound"))
        gone = await c.delete("Pod", "unbound")               # nobody to stop it: removed at once
        assert gone.metadata.name == "unbound"
        with pytest.raises(NotFound):
            await c.get("Pod", "unbound")
        await c.create(pod("bound"))
        await c.bind("bound", "node-1")
        marked = await c.delete("Pod", "bound")
        assert marked.metadata.HasField("deletion_timestamp")
        assert marked.metadata.deletion_grace_period_seconds == 30
        still = await c.get("Pod", "bound")                    # its agent stops it, then confirms
        assert still.metadata.HasField("deletion_timestamp")
        await c.delete("Pod", "bound", grace_period_seconds=0, precondition_uid=still.metadata.uid)
        with pytest.raises(NotFound):
            await c.get("Pod", "bound")
    run(side, body)


def test_cluster_scoped_objects_ignore_the_namespace(side):
    async def body(c):
        node = types_pb2.Node()
        node.metadata.name = "n1"
        created = await c.create(node)
        assert created.metadata.namespace == ""
        assert (await c.get("Node", "n1")).metadata.name == "n1"
        assert [n.metadata.name for n in (await c.list("nodes"))[0]] == ["n1"]
    run(side, body)


def test_the_fake_has_every_public_method_of_apiclient_with_the_same_signature():
    import inspect
    for name, real in inspect.getmembers(ApiClient, inspect.isfunction):
        if name.startswith("_"):
            continue
        fake = getattr(FakeApiClient, name, None)
        assert fake is not None, f"FakeApiClient has no {name}"
        assert inspect.signature(fake) == inspect.signature(real), f"FakeApiClient.{name} differs from ApiClient's"


def test_calls_the_fake_cannot_serve_say_so():
    async def body():
        c = FakeApiClient()
        with pytest.raises(NotImplementedError, match="logs"):
            await anext(c.logs("p"))
        with pytest.raises(NotImplementedError, match="stats"):
            await c.stats("node-1")
    asyncio.run(body())
