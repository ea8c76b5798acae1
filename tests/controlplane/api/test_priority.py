"""The Priority admission and the PriorityClass kind, over the real registry (FakeApiClient)."""
from __future__ import annotations

import asyncio

import grpc
import pytest

from controlplane.testing import CountingStore, FakeApiClient, eventually
from proto.skiff.v1 import scheduling_pb2, types_pb2
from skiff.api import manifest
from skiff.client import ApiError, Invalid


def pod(name: str, *, class_name: str = "", priority: int | None = None) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name = name
    p.spec.containers.add(name="c", image="busybox")
    p.spec.priority_class_name = class_name
    if priority is not None:
        p.spec.priority = priority
    return p


def priority_class(name: str, value: int, *, default: bool = False, policy: str = "") -> scheduling_pb2.PriorityClass:
    pc = scheduling_pb2.PriorityClass(value=value, global_default=default)
    pc.metadata.name = name
    if policy:
        pc.preemption_policy = policy
    return pc


def run(body) -> None:
    async def main():
        await body(FakeApiClient())
    asyncio.run(main())


def test_a_pod_gets_its_class_value_and_policy_and_keeps_them_on_reapply():
    async def body(c):
        await c.create(priority_class("high", 1000, policy="Never"))
        created = await c.create(pod("p", class_name="high"))
        assert created.spec.priority == 1000 and created.spec.preemption_policy == "Never"
        again, result = await c.apply(pod("p", class_name="high"))
        assert result == "unchanged" and again.spec.priority == 1000
        plain = await c.create(pod("plain"))
        assert plain.spec.HasField("priority") and plain.spec.priority == 0
        critical = await c.create(pod("critical", class_name="system-cluster-critical"))
        assert critical.spec.priority == 2_000_000_000
    run(body)


def test_the_global_default_class_applies_to_pods_naming_none_and_only_one_default():
    async def body(c):
        await c.create(priority_class("normal", 100, default=True))
        p = await c.create(pod("p"))
        assert (p.spec.priority, p.spec.priority_class_name) == (100, "normal")
        with pytest.raises(ApiError) as err:
            await c.create(priority_class("other", 5, default=True))
        assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert "PriorityClass normal is already marked as default. Only one default can exist" in str(err.value)
    run(body)


def test_an_unknown_class_or_a_mismatched_priority_is_refused_with_kubernetes_words():
    async def body(c):
        with pytest.raises(ApiError) as err:
            await c.create(pod("p", class_name="nope"))
        assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert str(err.value).endswith('pods "p" is forbidden: no PriorityClass with name nope was found')
        with pytest.raises(ApiError) as err:
            await c.apply(pod("q", class_name="nope"))
        assert "no PriorityClass with name nope was found" in str(err.value)
        with pytest.raises(ApiError) as err:
            await c.create(pod("r", priority=7))
        assert ("the integer value of priority (7) must not be provided in pod spec; priority admission "
                "controller computed 0 from the given PriorityClass name") in str(err.value)
        pods, _ = await c.list("Pod", "default")
        assert pods == []    # nothing half-applied
    run(body)


def test_priority_class_rules():
    async def body(c):
        with pytest.raises(Invalid) as err:
            await c.create(priority_class("huge", 2_000_000_000))
        assert err.value.field_path == "value"
        assert "maximum allowed value of a user defined priority is 1000000000" in str(err.value)
        with pytest.raises(Invalid) as err:
            await c.create(priority_class("system-mine", 1))
        assert err.value.field_path == "metadata.name"
        await c.create(priority_class("low", 10))
        changed = priority_class("low", 20)
        with pytest.raises(Invalid) as err:
            await c.update(changed)
        assert err.value.field_path == "value" and "field is immutable" in str(err.value)
        classes, _ = await c.list("PriorityClass")
        assert sorted(pc.metadata.name for pc in classes) == ["low", "system-cluster-critical",
                                                              "system-node-critical"]
    run(body)


def test_a_priority_class_manifest_without_a_policy_parses():
    (doc,) = manifest.parse_text("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\n"
                                 "value: 1000\n", source="pc.yaml")
    assert doc.ok, [str(e) for e in doc.errors]
    (doc,) = manifest.parse_text("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\n"
                                 "value: 1000\npreemptionPolicy: Sometimes\n", source="pc.yaml")
    assert [f"{e.path}: {e.message}" for e in doc.errors] == [
        'preemptionPolicy: Unsupported value: "Sometimes": supported values: "Never", "PreemptLowerPriority"']


def test_pod_creates_read_the_classes_from_the_cache_not_the_store():
    async def main():
        store = CountingStore()
        c = FakeApiClient(store)
        try:
            await c.create(priority_class("high", 1000))
            await c.create(pod("first", class_name="high"))   # the cache fills
            store.reset()
            for i in range(10):
                created = await c.create(pod(f"named-{i}", class_name="high"))
                assert created.spec.priority == 1000
                assert (await c.create(pod(f"plain-{i}"))).spec.priority == 0
            assert store.reads("PriorityClass") == 0
            # A default created now reaches later pods through the watch.
            await c.create(priority_class("normal", 100, default=True))

            async def defaulted():
                p = await c.create(pod(f"p-{store.reads('PriorityClass')}-{asyncio.get_running_loop().time()}"))
                return p.spec.priority == 100 and p.spec.priority_class_name == "normal"
            await eventually(defaulted, what="the new default class applied to a pod naming none")
            # A class created just before the pod naming it: the pod gets it (from the cache or the store).
            await c.create(priority_class("urgent", 5000))
            assert (await c.create(pod("u", class_name="urgent"))).spec.priority == 5000
        finally:
            await c.close()
    asyncio.run(main())


def test_a_second_default_is_refused_at_update_too():
    async def body(c):
        await c.create(priority_class("normal", 100, default=True))
        await c.create(priority_class("other", 5))
        with pytest.raises(ApiError) as err:
            await c.update(priority_class("other", 5, default=True))
        assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert "PriorityClass normal is already marked as default. Only one default can exist" in str(err.value)
        with pytest.raises(ApiError):
            await c.apply(priority_class("other", 5, default=True))
        again = await c.update(priority_class("normal", 100, default=True))   # the default itself: fine
        assert again.global_default
        stored = await c.get("PriorityClass", "other", "")
        assert not stored.global_default    # nothing half-applied
    run(body)
