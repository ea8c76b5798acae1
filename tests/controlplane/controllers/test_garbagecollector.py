"""The garbage collector over FakeApiClient: the three propagation policies,
chains, two owners, cycles, and the owner checked by uid through the API.

Owners are ConfigMaps, dependents Secrets and ConfigMaps (kinds every cluster
serves). What is asserted is what a user would see through the API: which
objects exist, with which ownerReferences and deletionTimestamp. The CLI on a
real control plane: tests/skiff/cli/test_cascade.py."""
from __future__ import annotations

import asyncio

import pytest

from controlplane.controllers.garbagecollector import GarbageCollector
from controlplane.testing import FakeApiClient, eventually, running
from proto.skiff.v1 import types_pb2
from skiff.client import NotFound
from skiff.controller import SharedInformerFactory

HOLD = "example.com/hold"   # a finalizer of "someone else": keeps an object in its deletion


def configmap(name: str, *owners, block: bool = False, finalizers=()) -> types_pb2.ConfigMap:
    cm = types_pb2.ConfigMap()
    cm.metadata.name = name
    cm.metadata.finalizers.extend(finalizers)
    add_owners(cm, *owners, block=block)
    return cm


def secret(name: str, *owners, block: bool = False, finalizers=()) -> types_pb2.Secret:
    s = types_pb2.Secret()
    s.metadata.name = name
    s.metadata.finalizers.extend(finalizers)
    add_owners(s, *owners, block=block)
    return s


def add_owners(obj, *owners, block: bool = False) -> None:
    for owner in owners:
        obj.metadata.owner_references.add(api_version=owner.api_version, kind=owner.kind,
                                          name=owner.metadata.name, uid=owner.metadata.uid,
                                          block_owner_deletion=block)


async def exists(c, kind: str, name: str) -> bool:
    try:
        await c.get(kind, name, "default")
    except NotFound:
        return False
    return True


async def names(c) -> dict[str, list[str]]:
    out = {}
    for kind in ("ConfigMap", "Secret"):
        items, _ = await c.list(kind, "default")
        out[kind] = sorted(i.metadata.name for i in items)
    return out


def gone(c, kind: str, *names_):
    async def check():
        return not any([await exists(c, kind, n) for n in names_])
    return check


async def release(c, kind: str, name: str) -> None:
    """The other finalizer is done."""
    obj = await c.get(kind, name, "default")
    obj.metadata.finalizers.remove(HOLD)
    await c.update(obj)


def run_gc(body, *, grace_seconds: float = 0.0, client=None):
    async def main():
        c = client or FakeApiClient()
        factory = SharedInformerFactory(c)
        gc = GarbageCollector(client=c, factory=factory, grace_seconds=grace_seconds)
        async with running(gc, factory=factory):
            await body(c, gc)
    asyncio.run(asyncio.wait_for(main(), 60))


# ---------------------------------------------------------------- background

def test_background_deletes_the_dependents_of_a_deleted_owner_and_keeps_the_others():
    async def body(c, gc):
        owner = await c.create(configmap("owner"))
        other = await c.create(configmap("other"))
        for name in ("a", "b"):
            await c.create(secret(f"dep-{name}", owner))
        await c.create(secret("kept", other))
        await c.create(secret("unowned"))
        await c.delete("ConfigMap", "owner")
        await eventually(gone(c, "Secret", "dep-a", "dep-b"), what="dependents collected")
        assert await names(c) == {"ConfigMap": ["other"], "Secret": ["kept", "unowned"]}
    run_gc(body)


def test_background_goes_down_a_two_level_chain():
    async def body(c, gc):
        top = await c.create(configmap("top"))
        middle = await c.create(secret("middle", top))
        await c.create(configmap("bottom", middle))
        await c.delete("ConfigMap", "top")
        await eventually(gone(c, "ConfigMap", "bottom"), what="the grandchild collected")
        assert await names(c) == {"ConfigMap": [], "Secret": []}
    run_gc(body)


def test_a_dependent_with_two_owners_is_kept_while_one_lives_and_loses_the_reference_to_the_other():
    async def body(c, gc):
        first, second = await c.create(configmap("first")), await c.create(configmap("second"))
        await c.create(secret("shared", first, second))
        await c.delete("ConfigMap", "first")

        async def reference_dropped():
            refs = (await c.get("Secret", "shared")).metadata.owner_references
            return [r.name for r in refs] == ["second"]
        await eventually(reference_dropped, what="the reference to the deleted owner removed")
        await c.delete("ConfigMap", "second")
        await eventually(gone(c, "Secret", "shared"), what="collected with its last owner")
    run_gc(body)


# ---------------------------------------------------------------- foreground

def test_foreground_keeps_the_owner_until_its_blocking_dependents_are_gone():
    async def body(c, gc):
        owner = await c.create(configmap("owner"))
        await c.create(secret("held", owner, block=True, finalizers=[HOLD]))
        await c.create(secret("free", owner, block=True))
        marked = await c.delete("ConfigMap", "owner", propagation_policy="Foreground")
        assert list(marked.metadata.finalizers) == ["foregroundDeletion"]
        await eventually(gone(c, "Secret", "free"), what="the free dependent deleted")

        async def held_is_deleting():
            return (await c.get("Secret", "held")).metadata.HasField("deletion_timestamp")
        await eventually(held_is_deleting, what="the held dependent marked")
        owner_now = await c.get("ConfigMap", "owner")      # still there: it waits for "held"
        assert owner_now.metadata.HasField("deletion_timestamp")
        assert list(owner_now.metadata.finalizers) == ["foregroundDeletion"]
        await release(c, "Secret", "held")
        await eventually(gone(c, "ConfigMap", "owner"), what="the owner gone after its dependents")
        assert await names(c) == {"ConfigMap": [], "Secret": []}
    run_gc(body)


def test_foreground_does_not_wait_for_a_dependent_without_block_owner_deletion():
    async def body(c, gc):
        owner = await c.create(configmap("owner"))
        await c.create(secret("held", owner, block=False, finalizers=[HOLD]))
        await c.delete("ConfigMap", "owner", propagation_policy="Foreground")
        await eventually(gone(c, "ConfigMap", "owner"), what="the owner gone")
        held = await c.get("Secret", "held")
        assert held.metadata.HasField("deletion_timestamp")   # deleted too, held by its own finalizer
    run_gc(body)


def test_foreground_reaches_down_a_two_level_chain_and_the_top_goes_last():
    async def body(c, gc):
        top = await c.create(configmap("top"))
        middle = await c.create(secret("middle", top, block=True))
        await c.create(configmap("bottom", middle, block=True, finalizers=[HOLD]))
        await c.delete("ConfigMap", "top", propagation_policy="Foreground")

        async def bottom_is_deleting():
            return (await c.get("ConfigMap", "bottom")).metadata.HasField("deletion_timestamp")
        await eventually(bottom_is_deleting, what="the grandchild marked")
        middle_now, top_now = await c.get("Secret", "middle"), await c.get("ConfigMap", "top")
        assert list(middle_now.metadata.finalizers) == ["foregroundDeletion"]   # foreground passed down
        assert top_now.metadata.HasField("deletion_timestamp")
        await release(c, "ConfigMap", "bottom")
        await eventually(gone(c, "ConfigMap", "top"), what="the top gone")
        assert await names(c) == {"ConfigMap": [], "Secret": []}
    run_gc(body)


# ---------------------------------------------------------------- orphan

def test_orphan_removes_the_owner_and_leaves_its_dependents_without_the_reference():
    async def body(c, gc):
        owner, other = await c.create(configmap("owner")), await c.create(configmap("other"))
        await c.create(secret("only", owner, block=True))
        await c.create(secret("both", owner, other))
        await c.delete("ConfigMap", "owner", propagation_policy="Orphan")
        await eventually(gone(c, "ConfigMap", "owner"), what="the owner gone")
        assert await names(c) == {"ConfigMap": ["other"], "Secret": ["both", "only"]}
        assert list((await c.get("Secret", "only")).metadata.owner_references) == []
        assert [r.name for r in (await c.get("Secret", "both")).metadata.owner_references] == ["other"]
    run_gc(body)


# ---------------------------------------------------------------- cycles

async def cycle(c, *names_, block: bool) -> None:
    """names_[0] owns names_[1] owns ... owns names_[0] (ConfigMaps)."""
    first = await c.create(configmap(names_[0]))
    previous = first
    for name in names_[1:]:
        previous = await c.create(configmap(name, previous, block=block))
    first = await c.get("ConfigMap", names_[0])
    add_owners(first, previous, block=block)
    await c.update(first)


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
@pytest.mark.parametrize("length", [2, 3])
def test_a_cycle_of_owners_is_deleted_without_hanging(policy, length):
    members = [f"ring-{i}" for i in range(length)]

    async def body(c, gc):
        await cycle(c, *members, block=True)
        await c.create(configmap("outside"))
        await c.delete("ConfigMap", members[0], propagation_policy=policy)
        await eventually(gone(c, "ConfigMap", *members), timeout=20, what="every member of the cycle gone")
        assert await names(c) == {"ConfigMap": ["outside"], "Secret": []}
    run_gc(body)


def test_an_object_owning_itself_does_not_wait_for_itself():
    async def body(c, gc):
        selfish = await c.create(configmap("selfish"))
        add_owners(selfish, selfish, block=True)
        await c.update(selfish)
        await c.delete("ConfigMap", "selfish", propagation_policy="Foreground")
        await eventually(gone(c, "ConfigMap", "selfish"), what="gone")
    run_gc(body)


# ---------------------------------------------------------------- the owner checked by uid

class HidingConfigMaps:
    """The client the informers use, with the ConfigMap informer forever
    behind: its list is empty and its watch silent (a stuck cache)."""

    def __init__(self, client) -> None:
        self.client = client

    async def list(self, kind, namespace="", label_selector="", field_selector=""):
        items, revision = await self.client.list(kind, namespace, label_selector, field_selector)
        return ([] if kind == "ConfigMap" else items), revision

    async def watch(self, kind, namespace="", label_selector="", field_selector="", resource_version="",
                    bookmarks=False):
        if kind == "ConfigMap":
            await asyncio.Event().wait()
        async for event in self.client.watch(kind, namespace, label_selector, field_selector, resource_version):
            yield event


def test_an_owner_missing_from_the_cache_is_checked_through_the_api_by_uid():
    async def main():
        c = FakeApiClient()
        factory = SharedInformerFactory(HidingConfigMaps(c))
        gc = GarbageCollector(client=c, factory=factory, grace_seconds=0)
        owner = await c.create(configmap("owner"))
        await c.create(secret("live-owner", owner))
        stale = configmap("owner")
        stale.kind, stale.api_version, stale.metadata.uid = "ConfigMap", "v1", "0d7d8c1e-uid-of-an-earlier-owner"
        await c.create(secret("stale-owner", stale))
        async with running(gc, factory=factory):
            # One worker takes the keys in order: once the second is collected, the first was judged.
            await eventually(gone(c, "Secret", "stale-owner"), what="the dependent of another uid collected")
            assert await exists(c, "Secret", "live-owner")
    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_dependent_seen_before_its_owner_is_kept_while_the_owner_appears_within_the_grace():
    """The owner's uid is on the dependent before the API has the owner (a
    restore writing dependents first; another API server's write not yet
    visible): no verdict during the grace, and the owner found after it keeps
    the dependent. reconcile is driven directly, with a fake clock."""
    async def main():
        c = FakeApiClient()
        factory = SharedInformerFactory(c)
        now = [1000.0]
        gc = GarbageCollector(client=c, factory=factory, grace_seconds=30, clock=lambda: now[0])
        future_owner, never = configmap("late"), configmap("never")
        for owner in (future_owner, never):
            owner.kind, owner.api_version, owner.metadata.uid = "ConfigMap", "v1", f"uid-of-{owner.metadata.name}"
        await c.create(secret("early", future_owner))
        await c.create(secret("abandoned", never))
        factory.start()
        try:
            await factory.wait_synced()
            early, abandoned = ("Secret", "default", "early"), ("Secret", "default", "abandoned")
            assert await gc.reconcile(early) == 30           # owner absent, but fresh: look again in 30 s
            assert await gc.reconcile(abandoned) == 30
            now[0] += 10
            assert await gc.reconcile(early) == 20
            future_owner.metadata.namespace = "default"
            await c.store.create(future_owner)                # the owner appears, with that uid
            now[0] += 25                                      # past the grace
            assert await gc.reconcile(early) is None
            assert await gc.reconcile(abandoned) is None
            assert await exists(c, "Secret", "early")
            assert not await exists(c, "Secret", "abandoned")
        finally:
            await factory.stop()
    asyncio.run(asyncio.wait_for(main(), 60))


def test_events_are_left_out_of_the_graph_as_kubernetes_ignores_them():
    # Four or five Events a pod, owning nothing: watching them kept each one decoded twice.
    async def body():
        c = FakeApiClient()
        factory = SharedInformerFactory(c)
        GarbageCollector(client=c, factory=factory)
        watched = {informer.kind for informer in factory.informers}
        assert "Event" not in watched and {"Pod", "ReplicaSet", "ConfigMap"} <= watched
    asyncio.run(body())
