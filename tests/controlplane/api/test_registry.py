"""The registry's generic semantics over a MemoryStore: namespace admission,
finalizers, propagation policies, generation and the status endpoint - what
every kind gets without a line of its own."""
import asyncio

import pytest

from controlplane.api.errors import Forbidden, Invalid
from controlplane.api.registry import Registry
from controlplane.store import Conflict, MemoryStore, NotFound
from controlplane.store.cacher import Cacher
from controlplane.testing import CountingStore
from proto.skiff.v1 import types_pb2
from skiff.api import kinds

POD, NS, CM = kinds.kind_named("Pod"), kinds.kind_named("Namespace"), kinds.kind_named("ConfigMap")


def run(body):
    async def main():
        registry = Registry(store=MemoryStore())
        await registry.bootstrap()
        return await body(registry)
    return asyncio.run(main())


def configmap(name: str, namespace: str = "default", **data: str) -> types_pb2.ConfigMap:
    cm = types_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = name, namespace
    cm.data.update(data)
    return cm


def namespace(name: str) -> types_pb2.Namespace:
    ns = types_pb2.Namespace()
    ns.metadata.name = name
    return ns


def test_initial_namespaces_exist_and_bootstrap_is_idempotent():
    async def body(r: Registry):
        await r.bootstrap()
        names = sorted(n.metadata.name for n in (await r.list(NS))[0])
        assert names == ["default", "kube-public", "kube-system", "skiff-system"]
    run(body)


def test_objects_in_a_missing_namespace_are_refused_as_kubernetes_does():
    async def body(r: Registry):
        with pytest.raises(NotFound, match='^namespaces "dev" not found$'):
            await r.create(configmap("c", "dev"))
        with pytest.raises(NotFound, match='^namespaces "dev" not found$'):
            await r.apply(configmap("c", "dev"))
        await r.create(namespace("dev"))
        created, result = await r.apply(configmap("c", "dev"))
        assert result == "created" and created.metadata.namespace == "dev"
    run(body)


def test_a_terminating_namespace_takes_no_new_objects_but_keeps_its_own():
    async def body(r: Registry):
        await r.create(namespace("dev"))
        await r.create(configmap("old", "dev"))
        marked = await r.delete(NS, "", "dev")
        assert marked.status.phase == "Terminating" and marked.metadata.HasField("deletion_timestamp")
        assert (await r.get(NS, "", "dev")).status.phase == "Terminating"
        with pytest.raises(Forbidden, match="^unable to create new content in namespace dev because it is being "
                                            "terminated$"):
            await r.create(configmap("new", "dev"))
        changed = configmap("old", "dev", a="b")
        assert (await r.apply(changed))[1] == "configured"   # existing objects may still change
    run(body)


def test_namespace_admission_reads_the_cache_and_the_store_where_the_cache_may_be_behind():
    """As Kubernetes' NamespaceLifecycle: a create in a namespace the cache holds reads no
    namespace from the store; one the cache lacks (just made), shows terminating (a new one of
    the name may be there), or this server began deleting is read from the store."""
    async def main():
        store = CountingStore()
        r = Registry(store=store)
        await r.bootstrap()
        try:
            await r.create(configmap("first"))              # starts the cache
            before = store.reads("Namespace", verb="get")
            for i in range(20):
                await r.create(configmap(f"c{i}"))
            from_cache = store.reads("Namespace", verb="get") - before
            await r.create(namespace("dev"))
            await r.create(configmap("new", "dev"))          # not in the cache yet: from the store
            await r.delete(NS, "", "dev")
            with pytest.raises(Forbidden, match="because it is being terminated$"):
                await r.create(configmap("late", "dev"))     # at once, whatever the cache shows
            return from_cache, (await r.get(CM, "dev", "new")).metadata.name
        finally:
            await r.close()
    from_cache, made = asyncio.run(main())
    assert (from_cache, made) == (0, "new")


def test_finalizers_hold_a_deleted_object_until_an_update_removes_the_last():
    async def body(r: Registry):
        cm = configmap("c")
        cm.metadata.finalizers.append("example.com/cleanup")
        await r.create(cm)
        marked = await r.delete(CM, "default", "c")
        assert marked.metadata.HasField("deletion_timestamp")
        again = await r.delete(CM, "default", "c")
        assert again.metadata.deletion_timestamp == marked.metadata.deletion_timestamp
        relabeled = await r.get(CM, "default", "c")
        relabeled.metadata.labels["still"] = "here"
        relabeled = await r.update(relabeled)                # a finalizer left: stays
        assert relabeled.metadata.HasField("deletion_timestamp")
        del relabeled.metadata.finalizers[:]
        await r.update(relabeled)
        with pytest.raises(NotFound):
            await r.get(CM, "default", "c")
    run(body)


def test_propagation_policies_leave_their_finalizer_and_bad_ones_are_invalid():
    async def body(r: Registry):
        for name in ("fg", "orphan", "bg"):
            await r.create(configmap(name))
        fg = await r.delete(CM, "default", "fg", propagation_policy="Foreground")
        assert list(fg.metadata.finalizers) == ["foregroundDeletion"] and fg.metadata.HasField("deletion_timestamp")
        orphan = await r.delete(CM, "default", "orphan", propagation_policy="Orphan")
        assert list(orphan.metadata.finalizers) == ["orphan"]
        await r.delete(CM, "default", "bg", propagation_policy="Background")
        with pytest.raises(NotFound):
            await r.get(CM, "default", "bg")
        with pytest.raises(Invalid, match="unsupported propagation policy 'Sideways'") as err:
            await r.delete(CM, "default", "fg", propagation_policy="Sideways")
        assert err.value.field_path == "propagationPolicy"
    run(body)


def test_a_graceful_pod_deletion_is_not_cut_short_by_a_status_update():
    async def body(r: Registry):
        pod = types_pb2.Pod()
        pod.metadata.name = "p"
        pod.spec.containers.add(name="c", image="busybox")
        await r.create(pod)
        await r.bind("default", "p", "node-1")
        marked = await r.delete(POD, "default", "p")
        assert marked.metadata.deletion_grace_period_seconds == 30
        marked.status.phase = "Running"
        assert (await r.update_status(marked)).status.phase == "Running"   # still there
        await r.delete(POD, "default", "p", grace_period_seconds=0)         # the agent confirms
        with pytest.raises(NotFound):
            await r.get(POD, "default", "p")
    run(body)


def test_generation_moves_with_the_spec_and_status_endpoint_keeps_the_rest():
    async def body(r: Registry):
        ns = await r.create(namespace("dev"))
        assert ns.metadata.generation == 1
        ns.metadata.labels["a"] = "b"
        ns = await r.update(ns)
        assert ns.metadata.generation == 1
        ns.status.phase = "Terminating"
        ns.metadata.labels["a"] = "ignored"
        after = await r.update_status(ns)
        assert after.status.phase == "Terminating" and after.metadata.labels["a"] == "b"
        stale = types_pb2.Namespace()
        stale.CopyFrom(ns)
        stale.metadata.resource_version = "1"
        with pytest.raises(Conflict):
            await r.update(stale)
        with pytest.raises(Invalid, match="ConfigMap has no status"):
            await r.update_status(configmap("c"))
    run(body)


def test_the_initial_namespaces_other_than_skiff_system_may_not_be_deleted():
    async def body(r: Registry):
        for name in ("default", "kube-system", "kube-public"):
            with pytest.raises(Forbidden, match=f'^namespaces "{name}" is forbidden: this namespace may not be '
                                                f'deleted$'):
                await r.delete(NS, "", name)
            assert (await r.get(NS, "", name)).status.phase == "Active"
    run(body)


def run_cached(body):
    """body(registry, store, cacher): a registry over a watch cache over a CountingStore."""
    async def main():
        store = CountingStore()
        cacher = Cacher(store)
        registry = Registry(store=cacher)
        try:
            await registry.bootstrap()
            return await body(registry, store, cacher)
        finally:
            await registry.close()
            await cacher.close()
    return asyncio.run(main())


async def _cached_at(cacher: Cacher, obj) -> None:
    """Until the watch cache has obj's version."""
    kind = kinds.kind_of(obj)
    await cacher.list(kind, obj.metadata.namespace)   # starts the kind's cache
    for _ in range(500):
        seen = cacher.peek(kind, obj.metadata.namespace, obj.metadata.name)
        if seen is not None and seen.metadata.resource_version == obj.metadata.resource_version:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the cache never reached {obj.metadata.resource_version}")


def _pod(name: str) -> types_pb2.Pod:
    pod = types_pb2.Pod()
    pod.metadata.name = name
    pod.spec.containers.add(name="c", image="busybox")
    return pod


def test_a_status_write_starts_from_the_cache_and_reads_nothing_from_the_store():
    async def body(r: Registry, store: CountingStore, cacher: Cacher):
        created = await r.create(_pod("p"))
        await _cached_at(cacher, created)
        store.reset()
        created.status.phase = "Running"
        written = await r.update_status(created)                  # at the caller's version
        unversioned = _pod("p")
        unversioned.status.phase = "Succeeded"
        await _cached_at(cacher, written)
        last = await r.update_status(unversioned)                 # at none: the latest
        assert store.reads("Pod", verb="get") == 0
        assert (await store.get(POD, "default", "p")).status.phase == "Succeeded" == last.status.phase
    run_cached(body)


def test_a_cache_behind_the_store_costs_a_read_and_loses_no_write():
    async def body(r: Registry, store: CountingStore, cacher: Cacher):
        created = await r.create(_pod("p"))
        await _cached_at(cacher, created)
        stale = cacher.peek(POD, "default", "p")
        relabelled = await r.get(POD, "default", "p")
        relabelled.metadata.labels["tier"] = "web"
        relabelled = await r.update(relabelled)
        await _cached_at(cacher, relabelled)
        # The cache as it would be had its watch not delivered the relabelling yet.
        cacher.caches()["pods"].objects["default"]["p"] = stale
        store.reset()
        status = _pod("p")
        status.status.phase = "Running"
        written = await r.update_status(status)
        assert store.reads("Pod", verb="get") == 1               # the CAS failed; the store's object was read
        assert written.metadata.labels["tier"] == "web" and written.status.phase == "Running"
        # A caller naming the store's version is not refused for the cache's older one.
        cacher.caches()["pods"].objects["default"]["p"] = stale
        written.status.phase = "Succeeded"
        assert (await r.update_status(written)).status.phase == "Succeeded"
        # A caller naming the cache's (stale) version is: someone wrote since.
        stale.status.phase = "Failed"
        cacher.caches()["pods"].objects["default"]["p"] = stale
        with pytest.raises(Conflict):
            await r.update_status(stale)
    run_cached(body)


def test_a_bind_starts_from_the_cache_and_a_stale_one_does_not_bind_twice():
    async def body(r: Registry, store: CountingStore, cacher: Cacher):
        first, second = await r.create(_pod("a")), await r.create(_pod("b"))
        await _cached_at(cacher, first)
        await _cached_at(cacher, second)
        store.reset()
        assert (await r.bind("default", "a", "node-1")).spec.node_name == "node-1"
        assert store.reads("Pod", verb="get") == 0
        unbound = cacher.peek(POD, "default", "b")
        await _cached_at(cacher, await r.bind("default", "b", "node-1"))
        cacher.caches()["pods"].objects["default"]["b"] = unbound   # a cache behind the store
        with pytest.raises(Conflict, match='already assigned to node "node-1"'):
            await r.bind("default", "b", "node-2")
        assert (await store.get(POD, "default", "b")).spec.node_name == "node-1"
    run_cached(body)


def test_a_status_write_checks_the_status_not_the_stored_spec():
    async def body(r: Registry):
        # A pod stored under an older rule (as a newer server may find it): its status still moves.
        old = _pod("old")
        old.metadata.namespace = "default"
        old.spec.volumes.add(name="Not_A_DNS_Label")
        await r.store.create(old)
        status = _pod("old")
        status.status.phase = "Running"
        assert (await r.update_status(status)).status.phase == "Running"
        # What a status write brings is still checked.
        status.status.start_time.seconds = 2**62
        with pytest.raises(Invalid) as refused:
            await r.update_status(status)
        assert refused.value.field_path == "status.startTime"
    run(body)
