"""The ClusterIP and NodePort allocators: pure ranges and bitmaps, and the
registry over real etcd — concurrent creates never share a value, deletes
release, a restart repairs from the Services, Kubernetes' errors."""
import asyncio

import pytest

from controlplane.api.errors import Invalid
from controlplane.api.registry import Registry
from controlplane.services.allocation import RANGE_ALLOCATION, RangeAllocator
from controlplane.services.hook import ServiceAllocations
from controlplane.services.ranges import AlreadyAllocated, Bitmap, IpRange, NotInRange, PortRange, RangeFull
from controlplane.store import Store
from controlplane.store.memory import MemoryStore
from proto.skiff.v1 import services_pb2
from skiff.api import kinds


def test_ip_range_offsets_skip_network_and_broadcast():
    r = IpRange("10.96.0.0/29")
    assert r.size == 6 and r.value(0) == "10.96.0.1" and r.value(5) == "10.96.0.6"
    assert r.offset("10.96.0.0") is None and r.offset("10.96.0.7") is None and r.offset("10.97.0.1") is None
    assert str(r.not_in_range("10.0.0.1")) == ("the provided IP (10.0.0.1) is not in the valid range. "
                                               "The range of valid IPs is 10.96.0.0/29")


def test_port_range_parse():
    r = PortRange.parse("30000-32767")
    assert (r.base, r.size, str(r)) == (30000, 2768, "30000-32767")
    assert r.offset(29999) is None and r.offset(32767) == 2767
    with pytest.raises(ValueError):
        PortRange.parse("32767-30000")


def test_bitmap_first_free_wraps():
    b = Bitmap(10)
    for i in range(10):
        if i != 3:
            b.set(i)
    assert b.first_free(7) == 3
    b.set(3)
    assert b.first_free() is None
    assert Bitmap(10, b.to_bytes()).count() == 10


def test_allocator_errors_over_memory():
    async def body():
        a = RangeAllocator(store=MemoryStore(), name="x", range_=PortRange.parse("30000-30001"))
        assert await a.allocate(30000) == 30000
        with pytest.raises(AlreadyAllocated, match="provided port is already allocated"):
            await a.allocate(30000)
        with pytest.raises(NotInRange, match="provided port is not in the valid range. The range of valid ports "
                                             "is 30000-30001"):
            await a.allocate(80)
        assert await a.allocate_next() == 30001
        with pytest.raises(RangeFull):
            await a.allocate_next()
        await a.release([30000])
        assert await a.allocate_next() == 30000
    asyncio.run(body())


def svc(name: str, **spec) -> services_pb2.Service:
    s = services_pb2.Service()
    s.metadata.name, s.metadata.namespace = name, "default"
    s.spec.selector["app"] = name
    p = s.spec.ports.add(port=80)
    if "node_port" in spec:
        p.node_port = spec.pop("node_port")
    for key, value in spec.items():
        setattr(s.spec, key, value)
    return s


@pytest.mark.etcd
def test_concurrent_creates_on_etcd_never_share_an_ip_or_port_and_deletes_release(etcd, etcd_prefix):
    async def body():
        store = Store(endpoint=etcd, root=etcd_prefix)
        # Two registries (two API servers) over one etcd, a small range so collisions would show.
        hooks = [ServiceAllocations(store=store, cluster_ip_range="10.96.0.0/26", node_port_range="30000-30099")
                 for _ in range(2)]
        for h in hooks:
            await h.repair()
        registries = [Registry(store=store, hooks={"Service": h}) for h in hooks]
        created = await asyncio.gather(*(registries[i % 2].create(svc(f"s{i}", type="NodePort"))
                                         for i in range(40)))
        ips = [s.spec.cluster_ip for s in created]
        ports = [s.spec.ports[0].node_port for s in created]
        assert len(set(ips)) == 40 and len(set(ports)) == 40
        assert all(ip.startswith("10.96.0.") for ip in ips) and all(30000 <= p <= 30099 for p in ports)
        assert await hooks[0].ips.allocated() == set(ips)
        # Deleting releases; the values are free for others.
        for s in created[:10]:
            await registries[0].delete(kinds.kind_named("Service"), "default", s.metadata.name)
        assert await hooks[0].ips.allocated() == set(ips[10:])
        assert await hooks[1].ports.allocated() == set(ports[10:])
        taken = await registries[1].create(svc("again", cluster_ip=ips[0], type="NodePort", node_port=ports[0]))
        assert (taken.spec.cluster_ip, taken.spec.ports[0].node_port) == (ips[0], ports[0])
        await store.close()
    asyncio.run(body())


@pytest.mark.etcd
def test_kubernetes_errors_and_nothing_half_taken(etcd, etcd_prefix):
    async def body():
        store = Store(endpoint=etcd, root=etcd_prefix)
        hook = ServiceAllocations(store=store)
        await hook.repair()
        registry = Registry(store=store, hooks={"Service": hook})
        first = await registry.create(svc("a", cluster_ip="10.96.0.10", type="NodePort", node_port=30080))
        assert first.spec.cluster_ips == ["10.96.0.10"]
        with pytest.raises(Invalid) as taken_ip:
            await registry.create(svc("b", cluster_ip="10.96.0.10"))
        assert str(taken_ip.value) == ('Service "b" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.10"}: '
                                       'failed to allocate IP 10.96.0.10: provided IP is already allocated')
        assert taken_ip.value.field_path == "spec.clusterIPs"
        with pytest.raises(Invalid) as outside:
            await registry.create(svc("c", cluster_ip="192.168.0.1"))
        assert "the provided IP (192.168.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/16" \
            in str(outside.value)
        # The IP is free but the port is taken: the IP is given back, nothing is stored.
        with pytest.raises(Invalid) as port:
            await registry.create(svc("d", cluster_ip="10.96.0.11", type="NodePort", node_port=30080))
        assert str(port.value) == ('Service "d" is invalid: spec.ports[0].nodePort: Invalid value: 30080: '
                                   'provided port is already allocated')
        assert port.value.field_path == "spec.ports[0].nodePort"
        assert "10.96.0.11" not in await hook.ips.allocated()
        with pytest.raises(Invalid, match="provided port is not in the valid range. The range of valid ports is "
                                          "30000-32767"):
            await registry.create(svc("e", type="NodePort", node_port=80))
        # Changing the type to ClusterIP gives the node port back; the IP may not change.
        changed = svc("a", cluster_ip="10.96.0.10")
        await registry.update(changed)
        assert 30080 not in await hook.ports.allocated()
        with pytest.raises(Invalid, match="may not change once set"):
            await registry.update(svc("a", cluster_ip="10.96.0.12"))
        await store.close()
    asyncio.run(body())


@pytest.mark.etcd
def test_a_restart_repairs_from_the_services(etcd, etcd_prefix):
    async def body():
        store = Store(endpoint=etcd, root=etcd_prefix)
        hook = ServiceAllocations(store=store)
        await hook.repair()
        registry = Registry(store=store, hooks={"Service": hook})
        a = await registry.create(svc("a", type="NodePort"))
        # The allocations are lost (their RangeAllocations deleted in etcd), one leaked value is left behind.
        for name in ("skiff-service-cluster-ips", "skiff-service-node-ports"):
            await store.delete(RANGE_ALLOCATION, "", name)
        await hook.ips.allocate("10.96.9.9")
        restarted = ServiceAllocations(store=store)
        await restarted.repair()
        assert await restarted.ips.allocated() == {a.spec.cluster_ip, "10.96.9.9"}
        assert await restarted.ports.allocated() == {a.spec.ports[0].node_port}
        registry = Registry(store=store, hooks={"Service": restarted})
        with pytest.raises(Invalid, match="provided IP is already allocated"):
            await registry.create(svc("b", cluster_ip=a.spec.cluster_ip))
        # A value leaked at two repairs in a row is freed.
        await restarted.repair()
        assert await restarted.ips.allocated() == {a.spec.cluster_ip}
        await store.close()
    asyncio.run(body())


def test_the_kubernetes_service_takes_the_first_address_and_points_at_the_front_door():
    from controlplane.services import kubernetes

    async def body():
        store = MemoryStore()
        hook = ServiceAllocations.ready(store=store)
        registry = Registry(store=store, hooks={"Service": hook})
        for address in ("127.0.0.1:6444", "127.0.0.1:7000"):   # a restart on another port moves the endpoints
            await kubernetes.ensure(registry, cluster_ip=hook.first_ip, rest_address=address)
        svc = await registry.get(kinds.kind_named("Service"), "default", "kubernetes")
        assert (svc.spec.cluster_ip, svc.spec.ports[0].port, svc.spec.ports[0].target_port) == \
            ("10.96.0.1", 443, "7000")
        ep = await registry.get(kinds.kind_named("Endpoints"), "default", "kubernetes")
        assert [(a.ip, p.port) for s in ep.subsets for a in s.addresses for p in s.ports] == [("127.0.0.1", 7000)]
        sl = await registry.get(kinds.kind_named("EndpointSlice"), "default", "kubernetes")
        assert [e.addresses[0] for e in sl.endpoints] == ["127.0.0.1"] and sl.ports[0].port == 7000
        # The first address taken by another Service (a changed range): logged, the API goes on.
        await registry.delete(kinds.kind_named("Service"), "default", "kubernetes")
        await registry.create(svc_with_ip("squatter", "10.96.0.1"))
        await kubernetes.ensure(registry, cluster_ip=hook.first_ip, rest_address="127.0.0.1:7000")
    asyncio.run(body())


def svc_with_ip(name: str, ip: str) -> services_pb2.Service:
    return svc(name, cluster_ip=ip)


def test_a_lost_bitmap_starts_again_from_the_services_not_from_empty():
    """A RangeAllocation missing from the store (lost, or never written): the next
    allocation must still see every value a Service holds, before any repair."""
    async def body():
        store = MemoryStore()
        hook = ServiceAllocations.ready(store=store, cluster_ip_range="10.96.0.0/29",
                                        node_port_range="30000-30002")
        registry = Registry(store=store, hooks={"Service": hook})
        held = [await registry.create(svc(f"s{i}", type="NodePort")) for i in range(3)]
        for name in ("skiff-service-cluster-ips", "skiff-service-node-ports"):
            await store.delete(RANGE_ALLOCATION, "", name)
        with pytest.raises(Invalid, match="provided IP is already allocated"):
            await registry.create(svc("again", cluster_ip=held[0].spec.cluster_ip))
        more = [await registry.create(svc(f"t{i}")) for i in range(3)]
        ips = [s.spec.cluster_ip for s in held + more]
        assert len(set(ips)) == 6   # the /29's six addresses, none handed out twice
        with pytest.raises(RangeFull):   # the three ports are the NodePort Services'
            await hook.ports.allocate_next()
    asyncio.run(body())


def test_the_bitmaps_are_not_configmaps_and_move_out_of_the_configmaps_of_before():
    """Decision 24: the bitmaps are unserved RangeAllocations, not kube-system ConfigMaps a user
    sees (and `delete cm --all -A` reaches); a cluster's ConfigMap bitmap of before is taken over."""
    async def body():
        store = MemoryStore()
        registry = Registry(store=store)
        # A cluster from before: 10.96.0.3 taken in the ConfigMap, its Service on its way to being stored.
        legacy = kinds.kind_named("ConfigMap").message()
        legacy.metadata.namespace, legacy.metadata.name = "kube-system", "skiff-service-cluster-ips"
        legacy.data["range"] = "10.96.0.0/29"
        bitmap = Bitmap(6)
        bitmap.set(IpRange("10.96.0.0/29").offset("10.96.0.3"))
        legacy.binary_data["allocated"] = bitmap.to_bytes()
        await registry.create(legacy)
        hook = ServiceAllocations.ready(store=store, cluster_ip_range="10.96.0.0/29")
        registry = Registry(store=store, hooks={"Service": hook})
        with pytest.raises(Invalid, match="provided IP is already allocated"):
            await registry.create(svc("late", cluster_ip="10.96.0.3"))
        a = await registry.create(svc("a", type="NodePort"))
        assert a.spec.cluster_ip != "10.96.0.3"
        configmaps, _ = await registry.list(kinds.kind_named("ConfigMap"))
        assert [(c.metadata.namespace, c.metadata.name) for c in configmaps] == []
        assert await hook.ips.allocated() == {"10.96.0.3", a.spec.cluster_ip}
        assert await hook.ports.allocated() == {a.spec.ports[0].node_port}
        with pytest.raises(kinds.UnknownKind):   # not served: no verb names it
            kinds.kind_named("RangeAllocation")
    asyncio.run(body())
