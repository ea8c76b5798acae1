"""The store against a real etcd: CAS, watch resume, re-list after compaction."""
import asyncio

import pytest

from controlplane.store import AlreadyExists, Compacted, Conflict, NotFound, Store, Unavailable
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


# ------------------------------------------------------------ hardening (issue 15)

def big_pod(name: str, annotation_bytes: int) -> types_pb2.Pod:
    p = pod(name)
    p.metadata.annotations["big"] = "x" * annotation_bytes
    return p


def test_a_watch_catching_up_over_big_objects_leaves_the_other_watches_alive(etcd, etcd_prefix):
    # Once every watch shared aetcd's one stream: a catch-up response over big
    # objects (5.6 MB > gRPC's 4 MiB) ended it for every watcher, and each
    # re-watch brought the same batch back: every watch went silent.
    async def body(store):
        _, before = await store.list(POD)
        for i in range(4):
            await store.create(big_pod(f"big{i}", 1_400_000))
        nodes = store.watch(NODE, after_revision=await store.revision())
        node_event = asyncio.ensure_future(anext(nodes))
        catching_up = [e.obj.metadata.name async for e in _first(store.watch(POD, after_revision=before), 4)]
        assert catching_up == ["big0", "big1", "big2", "big3"]
        node = types_pb2.Node()
        node.metadata.name = "n1"
        await store.create(node)
        event = await node_event
        assert (event.type, event.obj.metadata.name) == ("ADDED", "n1")
        await nodes.aclose()
    run(etcd, etcd_prefix, body)


async def _first(stream, n):
    count = 0
    async for event in stream:
        yield event
        count += 1
        if count == n:
            break


def test_a_stalled_watch_ends_with_an_error(etcd, etcd_prefix):
    # etcd stops answering (here: a proxy that stops forwarding): the watch asks
    # for progress after a silence and, with no answer, raises Unavailable.
    async def main():
        proxy = await _Proxy.start(etcd)
        store = Store(endpoint=f"127.0.0.1:{proxy.port}", root=etcd_prefix, timeout=1,
                      watch_progress_interval=0.5)
        try:
            revision = await store.revision()
            stream = store.watch(POD, after_revision=revision)
            first = asyncio.ensure_future(anext(stream))
            await store.create(pod("a"))
            assert (await asyncio.wait_for(first, 10)).obj.metadata.name == "a"
            proxy.frozen = True
            with pytest.raises(Unavailable, match="stalled: no answer to a progress request"):
                await asyncio.wait_for(anext(stream), 10)
        finally:
            proxy.close()
            await asyncio.wait_for(store.close(), 5)
    asyncio.run(main())


class _Proxy:
    """TCP forwarder to etcd that can freeze: bytes stop flowing, nothing is closed."""

    def __init__(self) -> None:
        self.frozen = False
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    @classmethod
    async def start(cls, target: str) -> "_Proxy":
        proxy = cls()
        host, _, port = target.rpartition(":")

        async def pipe(reader, writer):
            while data := await reader.read(65536):
                while proxy.frozen:
                    await asyncio.sleep(3600)
                writer.write(data)
                await writer.drain()

        async def serve(reader, writer):
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            for task in (asyncio.ensure_future(pipe(reader, up_writer)),
                         asyncio.ensure_future(pipe(up_reader, writer))):
                proxy._tasks.add(task)

        proxy._server = await asyncio.start_server(serve, "127.0.0.1", 0)
        proxy.port = proxy._server.sockets[0].getsockname()[1]
        return proxy

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._server.close()


def test_a_quiet_watch_lives_on_through_progress_requests(etcd, etcd_prefix):
    # Silence is not a stall: etcd answers the progress request and the watch goes on.
    async def main():
        store = Store(endpoint=etcd, root=etcd_prefix, timeout=2, watch_progress_interval=0.2)
        try:
            stream = store.watch(POD, after_revision=await store.revision())
            first = asyncio.ensure_future(anext(stream))
            await asyncio.sleep(1.5)   # several progress rounds
            assert not first.done()
            await store.create(pod("late"))
            assert (await asyncio.wait_for(first, 10)).obj.metadata.name == "late"
            await stream.aclose()
        finally:
            await store.close()
    asyncio.run(main())
