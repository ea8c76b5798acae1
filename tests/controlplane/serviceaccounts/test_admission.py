"""ServiceAccount admission (controlplane/serviceaccounts/admission.py) through the
registry: the default account, the refusal in Kubernetes' words, the token volume
and its mounts, automountServiceAccountToken, and an apply that keeps them."""
from __future__ import annotations

import asyncio

import pytest

from controlplane.api.errors import Forbidden
from controlplane.api.registry import Registry
from controlplane.serviceaccounts.admission import MOUNT_PATH, ServiceAccountAdmission
from controlplane.store import MemoryStore
from controlplane.testing import CountingStore
from proto.skiff.v1 import types_pb2
from skiff.api.kinds import serviceaccount


def _registry(store: MemoryStore | None = None, informers=None) -> Registry:
    """A registry with the plug-in wired as the control plane does (the registry's own informers)."""
    registry = Registry(store=store or MemoryStore())
    registry.admission_plugins.setdefault("Pod", []).append(
        ServiceAccountAdmission(store=registry.store, informers=informers or registry.informers,
                                default_wait=(0.01,)))
    return registry


def _pod(name: str = "web", **spec) -> types_pb2.Pod:
    pod = types_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name, pod.metadata.namespace = name, "default"
    pod.spec.containers.add(name="app", image="busybox")
    pod.spec.init_containers.add(name="init", image="busybox")
    for key, value in spec.items():
        setattr(pod.spec, key, value)
    return pod


async def _with_accounts(registry: Registry, *accounts: serviceaccount) -> None:
    await registry.bootstrap()
    for sa in accounts:
        await registry.create(sa)


def test_a_pod_runs_as_default_with_its_token_mounted_read_only():
    async def go():
        r = _registry()
        await _with_accounts(r, serviceaccount.new("default"))
        pod = await r.create(_pod())
        assert pod.spec.service_account_name == "default" and pod.spec.service_account == "default"
        [volume] = [v for v in pod.spec.volumes if v.name.startswith("kube-api-access-")]
        sources = volume.projected.sources
        assert sources[0].service_account_token.path == "token"
        assert sources[0].service_account_token.expiration_seconds == 3607
        assert sources[1].config_map.name == "kube-root-ca.crt" and sources[1].config_map.items[0].path == "ca.crt"
        assert sources[2].downward_api.items[0].field_ref.field_path == "metadata.namespace"
        for c in (*pod.spec.containers, *pod.spec.init_containers):
            [mount] = [m for m in c.volume_mounts if m.name == volume.name]
            assert mount.mount_path == MOUNT_PATH and mount.read_only
        # The same manifest applied again keeps what admission gave the pod (its spec is immutable).
        again, result = await r.apply(_pod())
        assert result == "unchanged" and list(again.spec.volumes) == list(pod.spec.volumes)
    asyncio.run(go())


def test_a_pod_naming_a_missing_account_is_refused_as_kubernetes_words_it():
    async def go():
        r = _registry()
        await _with_accounts(r)
        with pytest.raises(Forbidden, match='pods "web" is forbidden: error looking up service account '
                                            'default/robot: serviceaccount "robot" not found'):
            await r.create(_pod(service_account_name="robot"))
        with pytest.raises(Forbidden, match='serviceaccount "default" not found'):
            await r.create(_pod())
    asyncio.run(go())


def test_automount_false_on_the_account_or_the_pod():
    async def go():
        r = _registry()
        quiet = serviceaccount.new("default", "quiet")
        quiet.automount_service_account_token = False
        await _with_accounts(r, serviceaccount.new("default"), quiet)
        pod = await r.create(_pod("a", service_account_name="quiet"))
        assert not pod.spec.volumes and not pod.spec.containers[0].volume_mounts
        pod = await r.create(_pod("b", automount_service_account_token=False))
        assert not pod.spec.volumes
        pod = await r.create(_pod("c", service_account_name="quiet", automount_service_account_token=True))
        assert [v.name[:16] for v in pod.spec.volumes] == ["kube-api-access-"]
    asyncio.run(go())


def test_the_account_is_read_from_the_servers_cache_not_the_store_per_pod():
    async def go():
        store = CountingStore()
        r = _registry(store)
        try:
            await _with_accounts(r, serviceaccount.new("default"), serviceaccount.new("default", "robot"))
            await r.create(_pod("first", service_account_name="robot"))   # the cache's first list
            store.reset()
            for i in range(5):
                pod = await r.create(_pod(f"p{i}", service_account_name="robot"))
                assert pod.spec.volumes[0].name.startswith("kube-api-access-")
            assert store.reads("ServiceAccount", verb="get") == 0
        finally:
            await r.close()
    asyncio.run(asyncio.wait_for(go(), 30))


def test_an_account_the_cache_has_not_seen_is_read_from_the_store():
    from controlplane.api.informers import LoopbackInformers

    async def go():
        store = CountingStore()
        stale = LoopbackInformers(Registry(store=MemoryStore()))   # a cache that never sees an account
        r = _registry(store, informers=stale)
        try:
            await _with_accounts(r, serviceaccount.new("default", "robot"))
            pod = await r.create(_pod(service_account_name="robot"))
            assert pod.spec.service_account_name == "robot" and store.reads("ServiceAccount", verb="get") == 1
            with pytest.raises(Forbidden, match='serviceaccount "ghost" not found'):
                await r.create(_pod("other", service_account_name="ghost"))
        finally:
            await stale.stop()
            await r.close()
    asyncio.run(asyncio.wait_for(go(), 30))
