"""The watch cache (controlplane/store/cacher.py) against a real etcd: a list at
revision R is etcd's at R, a watch from R under concurrent writers gets every
event once and in order, pagination across the cache's window and etcd's
compaction is 410 Expired and a fresh list works; and, through the REST front
door, what kubectl and client libraries see (continue tokens, 410, bookmarks)."""
from __future__ import annotations

import asyncio
import json
import random

import pytest
from aetcd import rpc
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from controlplane.api.proxy import AgentProxy
from controlplane.api.registry import Registry
from controlplane.metrics import Metrics
from controlplane.rest import RestServer
from controlplane.store import Compacted, Store
from controlplane.store.cacher import Cacher, Expired
from controlplane.store.interface import FutureRevision, InvalidRevision, NotFound
from controlplane.store.etcd import _prefix_end
from proto.skiff.v1 import types_pb2
from skiff.api import kinds

pytestmark = pytest.mark.etcd
POD = kinds.kind_named("Pod")


def pod(name: str, namespace: str = "default", *, image: str = "busybox", app: str = "web") -> types_pb2.Pod:
    p = types_pb2.Pod(kind="Pod", api_version="v1")
    p.metadata.name, p.metadata.namespace = name, namespace
    p.metadata.labels["app"] = app
    p.spec.containers.add(name="c", image=image)
    return p


def namespace(name: str) -> types_pb2.Namespace:
    ns = types_pb2.Namespace(kind="Namespace", api_version="v1")
    ns.metadata.name = name
    return ns


def run(etcd, prefix, body, **options):
    async def main():
        store = Store(endpoint=etcd, root=prefix)
        cacher = Cacher(store, **options)
        try:
            return await asyncio.wait_for(body(cacher, store), 120)
        finally:
            await cacher.close()
    return asyncio.run(main())


async def etcd_at(store: Store, revision: int) -> dict[tuple[str, str], types_pb2.Pod]:
    """Every pod as etcd itself has them at `revision` (a range read at that revision)."""
    prefix = store.prefix(POD)
    response = await store._range(rpc.RangeRequest(key=prefix, range_end=_prefix_end(prefix), revision=revision))
    objs = [store._decode(POD, kv) for kv in response.kvs]
    return {(o.metadata.namespace, o.metadata.name): o for o in objs}


async def churn(store: Store, writer: int, steps: int, seed: int) -> None:
    """Creates, updates and deletes of a writer's own pods, in a random order."""
    rng = random.Random(seed)
    live: list[str] = []
    for step in range(steps):
        choice = rng.random()
        if not live or choice < 0.4:
            name = f"w{writer}-{step}"
            await store.create(pod(name, ("default", "other")[step % 2]))
            live.append(name)
            continue
        name = rng.choice(live)
        ns = ("default", "other")[int(name.rsplit("-", 1)[1]) % 2]
        if choice < 0.8:
            current = await store.get(POD, ns, name)
            current.spec.containers[0].image = f"image-{step}"
            await store.update(current)
        else:
            await store.delete(POD, ns, name)
            live.remove(name)


def test_a_list_at_revision_r_is_etcds_at_r(etcd, etcd_prefix):
    async def body(cacher, store):
        for i in range(5):
            await store.create(pod(f"seed-{i}"))
        await cacher.list(POD)                      # the cache starts here
        revisions = []
        for step in range(30):
            if step % 3:
                await churn(store, writer=step, steps=3, seed=step)
            await store.create(pod(f"p-{step}", "other"))
            if step % 5 == 0:
                await store.delete(POD, "default", f"seed-{step // 5}") if step < 25 else None
            revisions.append(await store.revision())
        await store.create(namespace("unrelated"))  # moves etcd's revision, not the pods'
        for revision in revisions[::4] + [await store.revision()]:
            page = await cacher.list_page(POD, resource_version=str(revision), match="Exact")
            expected = await etcd_at(store, revision)
            assert page.revision == revision
            assert [(o.metadata.namespace, o.metadata.name) for o in page.items] == sorted(expected)
            assert [o for o in page.items] == [expected[k] for k in sorted(expected)]
    run(etcd, etcd_prefix, body)


def test_a_consistent_list_sees_every_write_before_it(etcd, etcd_prefix):
    async def body(cacher, store):
        await cacher.list(POD)
        created = await store.create(pod("fresh"))
        items, revision = await cacher.list(POD)   # no resourceVersion: never older than etcd now
        assert "fresh" in [o.metadata.name for o in items]
        other = await store.create(namespace("elsewhere"))
        items, revision = await cacher.list(POD)
        # Nothing of the kind changed: the cache proves it is etcd's state at the current revision.
        assert revision >= int(other.metadata.resource_version) > int(created.metadata.resource_version)
        assert sorted(await etcd_at(store, revision)) == [(o.metadata.namespace, o.metadata.name) for o in items]
        with pytest.raises(Exception, match="newer than the store's revision"):
            await cacher.list_page(POD, resource_version=str(revision + 1000))
    run(etcd, etcd_prefix, body)


def test_a_get_at_0_or_r_is_the_caches_and_only_a_get_without_one_reads_etcd(etcd, etcd_prefix):
    """Kubernetes' GET semantics: resourceVersion "0" any (the cache's), R not older than R
    (the cache's once it has R), "" the latest (a quorum read from etcd)."""
    async def body(cacher, store):
        await store.create(pod("a"))
        await cacher.list(POD)                      # the cache starts
        reads = []
        real_get = store.get

        async def counted(*args, **kwargs):
            reads.append(args)
            return await real_get(*args, **kwargs)
        store.get = counted
        got = await cacher.get_at(POD, "default", "a", resource_version="0")
        assert got.metadata.name == "a" and reads == []
        got.spec.containers[0].image = "changed-by-the-caller"   # a copy: the cache's object is its own
        assert (await cacher.get_at(POD, "default", "a", resource_version="0")).spec.containers[0].image == "busybox"
        current = await real_get(POD, "default", "a")
        current.spec.containers[0].image = "nginx"
        updated = await store.update(current)
        rv = updated.metadata.resource_version
        got = await cacher.get_at(POD, "default", "a", resource_version=rv)   # waits for the cache to have it
        assert (got.metadata.resource_version, got.spec.containers[0].image) == (rv, "nginx")
        assert reads == []
        assert (await Registry(store=cacher).get(POD, "default", "a")).metadata.resource_version == rv
        assert len(reads) == 1                      # "": from etcd
        with pytest.raises(NotFound, match='Pod "missing" in namespace "default" not found'):   # as etcd's get words it
            await cacher.get_at(POD, "default", "missing", resource_version="0")
        with pytest.raises(InvalidRevision, match="not a revision"):
            await cacher.get_at(POD, "default", "a", resource_version="yesterday")
        with pytest.raises(FutureRevision, match="newer than the store's revision"):
            await cacher.get_at(POD, "default", "a", resource_version=str(int(rv) + 1000))
    run(etcd, etcd_prefix, body)


def test_a_watch_from_r_gets_every_event_once_in_order_under_concurrent_writers(etcd, etcd_prefix):
    async def body(cacher, store):
        await store.create(pod("before"))
        _, start = await cacher.list(POD)
        writers = [asyncio.create_task(churn(store, writer=w, steps=40, seed=w)) for w in range(4)]
        got: dict[int, list[tuple[str, str, int]]] = {}
        starts: dict[int, int] = {}

        async def watcher(n: int) -> None:
            await asyncio.sleep(0.05 * n)        # some start during the writes
            after = start if n % 2 == 0 else await store.revision()
            starts[n] = after
            got[n] = []
            async for event in cacher.watch(POD, after_revision=after):
                got[n].append((event.type, event.obj.metadata.name, event.revision))
                if event.obj.metadata.name == "last":
                    return

        watchers = [asyncio.create_task(watcher(n)) for n in range(6)]
        await asyncio.gather(*writers)
        while len(starts) < len(watchers):   # "last" after every watcher's revision
            await asyncio.sleep(0.05)
        await store.create(pod("last"))
        await asyncio.wait_for(asyncio.gather(*watchers), 60)
        for n, events in got.items():
            # etcd's own watch from the same revision is the reference.
            reference = []
            async for event in store.watch(POD, after_revision=starts[n]):
                reference.append((event.type, event.obj.metadata.name, event.revision))
                if event.obj.metadata.name == "last":
                    break
            assert events == reference, f"watcher {n} from {starts[n]}"
            assert len({e[2] for e in events}) == len(events)   # no duplicate
    run(etcd, etcd_prefix, body)


def test_pagination_across_the_window_and_compaction_is_410_and_a_new_list_works(etcd, etcd_prefix):
    async def body(cacher, store):
        for i in range(6):
            await store.create(pod(f"p-{i}"))
        first = await cacher.list_page(POD, limit=2)
        assert [o.metadata.name for o in first.items] == ["p-0", "p-1"] and first.next_key == ("default", "p-1")
        await store.delete(POD, "default", "p-2")          # a change between pages: the token's revision holds
        second = await cacher.list_page(POD, limit=2, continue_from=(first.revision, first.next_key))
        assert [o.metadata.name for o in second.items] == ["p-2", "p-3"]
        for i in range(12):                                   # more than the cache's window of 8 events
            await store.create(pod(f"q-{i}"))
        await store.compact(await store.revision())
        await cacher.list(POD)                                # (the cache has seen them all)
        with pytest.raises(Expired, match="The provided continue parameter is too old"):
            await cacher.list_page(POD, limit=2, continue_from=(second.revision, second.next_key))
        with pytest.raises(Expired, match="The resourceVersion for the provided list is too old"):
            await cacher.list_page(POD, resource_version=str(first.revision), match="Exact")
        names, key, revision = [], None, None   # the restart: a list without continue, paged to the end
        while True:
            page = await cacher.list_page(POD, limit=5, continue_from=(revision, key) if key else None)
            names += [o.metadata.name for o in page.items]
            revision, key = page.revision, page.next_key
            if key is None:
                break
        assert names == sorted(n for n in [f"p-{i}" for i in range(6) if i != 2] + [f"q-{i}" for i in range(12)])
        with pytest.raises(Compacted):                      # etcd no longer has it either
            async for _ in cacher.watch(POD, after_revision=first.revision):
                pass
    run(etcd, etcd_prefix, body, capacity=8)


def test_a_watcher_that_does_not_read_is_closed_and_others_go_on(etcd, etcd_prefix):
    async def body(cacher, store):
        _, start = await cacher.list(POD)
        slow = cacher.watch(POD, after_revision=start)
        fast = cacher.watch(POD, after_revision=start)
        await store.create(pod("a"))
        assert (await anext(slow)).obj.metadata.name == "a"     # both registered
        assert (await anext(fast)).obj.metadata.name == "a"
        for i in range(8):                                       # more than the slow one's buffer
            await store.create(pod(f"b-{i}"))
            assert (await asyncio.wait_for(anext(fast), 10)).obj.metadata.name == f"b-{i}"
        with pytest.raises(StopAsyncIteration):                  # closed, as Kubernetes closes it
            await asyncio.wait_for(anext(slow), 10)
        cache = cacher._caches["pods"]
        assert len(cache.watchers) == 1
        # What a scrape of the API server's /metrics shows of it, in kube-apiserver's names.
        metrics = Metrics()
        metrics.watch_cache.cachers.append(cacher)
        pods = {name: value for name, labels, value in samples(metrics) if labels == {"resource": "pods"}}
        # "a" reached the cache before or after the two watchers registered (at their first read):
        # replayed to them from the ring, or dispatched; every b-i was dispatched.
        assert pods.pop("apiserver_watch_cache_events_dispatched_total") in (8, 9)
        assert pods == {
            "apiserver_watch_cache_events_received_total": 9,
            "apiserver_watch_cache_initializations_total": 1, "apiserver_terminated_watchers_total": 1,
            "apiserver_cache_list_total": 1, "apiserver_cache_list_fetched_objects_total": 0,
            "apiserver_cache_list_returned_objects_total": 0,
            "apiserver_watch_cache_resource_version": cache.revision, "apiserver_watch_cache_capacity": 100,
            "apiserver_registered_watchers": 1}
        await fast.aclose()
        # A watch from further back than its buffer replays it all (not closed before it reads).
        late = cacher.watch(POD, after_revision=start)
        assert [(await anext(late)).obj.metadata.name for _ in range(9)] == ["a"] + [f"b-{i}" for i in range(8)]
        await late.aclose()
    run(etcd, etcd_prefix, body, watcher_buffer=4, capacity=100)


def samples(metrics) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample in a scrape of `metrics`."""
    return [(sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(metrics.render().decode()) for sample in family.samples]


def test_an_event_is_encoded_once_for_every_watcher(etcd, etcd_prefix):
    async def body(cacher, store):
        registry = Registry(store=cacher)
        _, start = await cacher.list(POD)
        streams = [registry.watch(POD, "default", resource_version=str(start)) for _ in range(3)]
        await store.create(pod("a"))
        items = [await anext(s) for s in streams]
        assert len({id(item.encoded) for item in items}) == 1        # one shared encoding per event
        items[0].encoded[("json", "ADDED")] = b"made once"
        assert items[2].encoded[("json", "ADDED")] == b"made once"
        for s in streams:
            await s.aclose()
        # A LIST sends each object's bytes made once, new bytes once the object changed.
        (listed,), _ = await cacher.list(POD, "default")
        data = registry.serialized(listed)
        assert registry.serialized(listed) is data and types_pb2.Pod.FromString(data) == listed
        changed = types_pb2.Pod.FromString(data)      # (the cache's objects are read-only)
        changed.spec.containers[0].image = "changed"
        await store.update(changed)
        (again,), _ = await cacher.list(POD, "default")
        assert types_pb2.Pod.FromString(registry.serialized(again)).spec.containers[0].image == "changed"
    run(etcd, etcd_prefix, body)


def test_a_node_s_pod_watch_is_offered_only_its_node_s_pods(etcd, etcd_prefix):
    """Pods' watchers are indexed by spec.nodeName (Kubernetes' trigger): an agent's watch of
    its node's pods is not woken by every other node's pod, yet sees its own pods come (bound)
    and go, replayed or live, as an unindexed watch does."""
    async def body(cacher, store):
        registry = Registry(store=cacher)
        _, start = await cacher.list(POD)
        by_node = {n: registry.watch(POD, field_selector=f"spec.nodeName={n}", resource_version=str(start))
                   for n in ("n1", "n2")}
        raw = cacher.watch(POD, after_revision=start, fields={"spec.nodeName": "n2"})   # no selector applied
        everything = registry.watch(POD, resource_version=str(start))
        await store.create(pod("p1"))
        p1 = await store.get(POD, "default", "p1")
        p1.spec.node_name = "n1"                                   # bound
        await store.update(p1)
        p2 = pod("p2")
        p2.spec.node_name = "n2"
        await store.create(p2)
        await store.delete(POD, "default", "p1")

        async def seen(stream, n):
            events = [await asyncio.wait_for(anext(stream), 10) for _ in range(n)]
            return [(e.type, e.obj.metadata.name) if hasattr(e, "key") else (e[0], e[1].metadata.name)
                    for e in events]   # a CachedEvent, or the registry's Delivery
        assert await seen(by_node["n1"], 2) == [("ADDED", "p1"), ("DELETED", "p1")]
        assert await seen(by_node["n2"], 1) == [("ADDED", "p2")]
        assert await seen(everything, 4) == [("ADDED", "p1"), ("MODIFIED", "p1"), ("ADDED", "p2"),
                                             ("DELETED", "p1")]
        assert await seen(raw, 1) == [("ADDED", "p2")]            # p1's three events never reached it
        cache = cacher._caches["pods"]
        assert set(cache.triggered) == {"n1", "n2"}
        # From the start again: the ring's replay is indexed the same way.
        late = registry.watch(POD, field_selector="spec.nodeName=n1", resource_version=str(start))
        assert await seen(late, 2) == [("ADDED", "p1"), ("DELETED", "p1")]
        for stream in (*by_node.values(), raw, everything, late):
            await stream.aclose()
        assert not cache.watchers and not cache.triggered and not cache.untriggered
    run(etcd, etcd_prefix, body)


async def rest(cacher, body) -> None:
    registry = Registry(store=cacher)
    await registry.bootstrap()
    server = RestServer(registry=registry, proxy=AgentProxy(store=cacher.store), listen="127.0.0.1:0",
                        bookmark_seconds=30.0)
    async with TestClient(TestServer(server.app)) as client:
        await body(client, registry)


def test_rest_pages_410_and_bookmarks_as_kubernetes(etcd, etcd_prefix):
    async def body(cacher, store):
        async def on(client, registry):
            for i in range(5):
                await registry.create(pod(f"p-{i}", app="web" if i % 2 == 0 else "db"))
            r = await client.get("/api/v1/namespaces/default/pods?limit=2&labelSelector=app%3Dweb")
            first = await r.json()
            assert [i["metadata"]["name"] for i in first["items"]] == ["p-0", "p-2"]
            token = first["metadata"]["continue"]
            r = await client.get(f"/api/v1/namespaces/default/pods?limit=2&labelSelector=app%3Dweb&continue={token}")
            second = await r.json()
            assert [i["metadata"]["name"] for i in second["items"]] == ["p-4"]
            assert "continue" not in second["metadata"]
            assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
            r = await client.get("/api/v1/namespaces/default/pods/p-0?resourceVersion=0")   # from the cache
            assert (r.status, (await r.json())["metadata"]["name"]) == (200, "p-0")
            r = await client.get("/api/v1/namespaces/default/pods/nope?resourceVersion=0")
            assert (r.status, (await r.json())["reason"]) == (404, "NotFound")
            r = await client.get("/api/v1/namespaces/default/pods?resourceVersionMatch=Exact")
            assert r.status == 422 and "resourceVersionMatch is forbidden unless resourceVersion is provided" \
                in (await r.json())["message"]
            for i in range(10):
                await registry.create(pod(f"q-{i}"))
            # A consistent list waits until the cache has applied those writes (their events come
            # over its etcd watch): only then has its 8-event window moved past the token's revision.
            r = await client.get("/api/v1/namespaces/default/pods?limit=1")
            assert r.status == 200
            r = await client.get(f"/api/v1/namespaces/default/pods?limit=2&continue={token}")
            status = await r.json()
            assert (r.status, status["reason"]) == (410, "Expired")
            assert status["message"].startswith("The provided continue parameter is too old")
            r = await client.get("/api/v1/namespaces/default/pods?limit=100")   # the restart
            assert len((await r.json())["items"]) == 15
            rv = (await r.json())["metadata"]["resourceVersion"]
            # An idle watch gets the cache's bookmarks (cache's own timer is 0.3 s here).
            response = await client.get(f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}"
                                        f"&allowWatchBookmarks=true")
            line = json.loads(await asyncio.wait_for(response.content.readline(), 30))
            assert line["type"] == "BOOKMARK" and int(line["object"]["metadata"]["resourceVersion"]) >= int(rv)
            response.close()
        await rest(cacher, on)
    run(etcd, etcd_prefix, body, capacity=8, bookmark_seconds=0.3)


def test_grpc_watch_bookmarks_carry_an_idle_watch_to_the_stores_revision(etcd, etcd_prefix):
    """The gRPC API's allow_watch_bookmarks (the informers ask for it): a pod watch with no pod
    event is told the revision the cache has proven for pods, past writes of other kinds, so
    resuming it later does not start from a revision etcd may have compacted."""
    from controlplane.api.server import ApiServer
    from controlplane.metrics import Metrics
    from skiff.client import ApiClient

    async def main():
        store = Store(endpoint=etcd, root=etcd_prefix)
        server = ApiServer(store=store, metrics=Metrics(), listen="127.0.0.1:0")
        server.cacher.bookmark_seconds = 0.3
        port = await server.start()
        try:
            async with ApiClient(f"127.0.0.1:{port}") as c:
                _, before = await c.list("Pod", "default")
                for i in range(3):   # the store's revision moves; no pod changes
                    await c.create(namespace(f"busy-{i}"))
                _, proven = await c.list("Pod", "default")   # a consistent list: pods unchanged up to here
                assert int(proven) > int(before)
                stream = c.watch("Pod", "default", resource_version=before, bookmarks=True)
                try:
                    event = await asyncio.wait_for(anext(stream), 30)
                finally:
                    await stream.aclose()
                return event, proven
        finally:
            await server.stop(grace=0)
    (type_, obj, revision), proven = asyncio.run(main())
    assert (type_, obj) == ("BOOKMARK", None)
    assert int(revision) >= int(proven)
