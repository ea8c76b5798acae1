"""The EndpointSlice controller over FakeApiClient: slices and Endpoints from a
Service's pods (conditions from readiness and deletion, named target ports,
100 a slice, hostname), owner references, placeholder slice; and the pure plan."""
import asyncio

from proto.skiff.v1 import services_pb2, types_pb2
from skiff.api import meta
from skiff.api.kinds import service as service_kind
from controlplane.controllers.endpointslice import EndpointSliceController, plan_slices
from controlplane.controllers.servicelb import ServiceLbController
from controlplane.testing import FakeApiClient, eventually, running
from skiff.controller import SharedInformerFactory


def service(name="web", *, selector=None, ports=(("", 80, "8080"),), **spec) -> services_pb2.Service:
    svc = services_pb2.Service()
    svc.metadata.name, svc.metadata.namespace = name, "default"
    svc.spec.selector.update(selector if selector is not None else {"app": "web"})
    for port_name, port, target in ports:
        svc.spec.ports.add(name=port_name, port=port, target_port=target)
    for key, value in spec.items():
        setattr(svc.spec, key, value)
    return service_kind.KIND.strategy.defaults(svc)


def pod(name, ip, *, ready=True, labels=None, node="n1", ports=(), terminating=False, **spec) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = name, "default", f"uid-{name}"
    p.metadata.labels.update(labels if labels is not None else {"app": "web"})
    c = p.spec.containers.add(name="c", image="busybox")
    for port_name, number in ports:
        c.ports.add(name=port_name, container_port=number, protocol="TCP")
    p.spec.node_name = node
    for key, value in spec.items():
        setattr(p.spec, key, value)
    p.status.phase = "Running"
    p.status.pod_ip = ip
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    if terminating:
        p.metadata.deletion_timestamp.CopyFrom(meta.timestamp())
    return p


def conditions(sl):
    return {e.addresses[0]: (e.conditions.ready, e.conditions.serving, e.conditions.terminating)
            for e in sl.endpoints}


def test_conditions_from_readiness_and_deletion():
    svc = service()
    plan = plan_slices(svc, [pod("a", "10.244.0.2"), pod("b", "10.244.0.3", ready=False),
                             pod("c", "10.244.0.4", terminating=True),
                             pod("d", "10.244.0.5", ready=False, terminating=True)], [])
    [sl] = plan.create
    assert conditions(sl) == {"10.244.0.2": (True, True, False), "10.244.0.3": (False, False, False),
                              "10.244.0.4": (False, True, True), "10.244.0.5": (False, False, True)}
    assert [(p.name, p.port, p.protocol) for p in sl.ports] == [("", 8080, "TCP")]
    assert sl.metadata.labels["kubernetes.io/service-name"] == "web"
    assert sl.metadata.owner_references[0].kind == "Service" and sl.metadata.owner_references[0].controller
    assert sl.endpoints[0].node_name == "n1" and sl.endpoints[0].target_ref.name == "a"


def test_zone_from_the_nodes_label():
    [sl] = plan_slices(service(), [pod("a", "10.244.0.2", node="n1"), pod("b", "10.244.0.3", node="n2")], [],
                       zones={"n1": "zone-a"}).create
    assert [(e.node_name, e.zone if e.HasField("zone") else None) for e in sl.endpoints] == [
        ("n1", "zone-a"), ("n2", None)]


def test_publish_not_ready_addresses_makes_every_pod_ready():
    svc = service(publish_not_ready_addresses=True)
    [sl] = plan_slices(svc, [pod("b", "10.244.0.3", ready=False)], []).create
    assert conditions(sl) == {"10.244.0.3": (True, True, False)}


def test_named_target_port_resolves_per_pod_and_pods_without_it_lack_that_port():
    svc = service(ports=(("http", 80, "web"),))
    plan = plan_slices(svc, [pod("a", "10.244.0.2", ports=[("web", 8080)]),
                             pod("b", "10.244.0.3", ports=[("web", 9090)]),
                             pod("c", "10.244.0.4")], [])
    by_port = {tuple(p.port for p in sl.ports): [e.addresses[0] for e in sl.endpoints] for sl in plan.create}
    assert by_port == {(8080,): ["10.244.0.2"], (9090,): ["10.244.0.3"], (): ["10.244.0.4"]}


def test_at_most_100_a_slice_and_endpoints_stay_in_their_slice():
    svc = service()
    pods = [pod(f"p{i:03}", f"10.244.{i // 200}.{i % 200 + 2}") for i in range(250)]
    plan = plan_slices(svc, pods, [])
    assert sorted(len(sl.endpoints) for sl in plan.create) == [50, 100, 100]
    existing = []
    for i, sl in enumerate(plan.create):
        sl.metadata.name = f"web-{i}"
        existing.append(sl)
    # One pod goes, one comes: only the slices involved change.
    gone = existing[0].endpoints[0].target_ref.name
    pods = [p for p in pods if p.metadata.name != gone] + [pod("new", "10.244.9.9")]
    again = plan_slices(svc, pods, existing)
    assert not again.create and not again.delete
    assert [sl.metadata.name for sl in again.update] == ["web-0"]
    assert "10.244.9.9" in conditions(again.update[0])


def test_a_service_with_no_pods_keeps_one_empty_slice():
    [sl] = plan_slices(service(), [], []).create
    assert len(sl.endpoints) == 0 and sl.address_type == "IPv4"


def test_hostname_for_pods_in_the_services_subdomain():
    svc = service("db", cluster_ip="None")
    [sl] = plan_slices(svc, [pod("a", "10.244.0.2", hostname="db-0", subdomain="db"),
                             pod("b", "10.244.0.3", hostname="x", subdomain="other")], []).create
    assert [e.hostname if e.HasField("hostname") else None for e in sl.endpoints] == ["db-0", None]


def test_controller_writes_slices_and_endpoints_and_follows_pods():
    async def body():
        c = FakeApiClient()
        svc = await c.create(service())
        await c.create(service("nosel", selector={}))
        for p in (pod("a", "10.244.0.2"), pod("b", "10.244.0.3", ready=False), pod("other", "10.244.0.4",
                                                                                      labels={"app": "x"})):
            await c.create(p)
            # FakeApiClient's create resets status; write it as an agent would.
            stored = await c.get("Pod", p.metadata.name)
            stored.status.CopyFrom(p.status)
            await c.update_status(stored)
        factory = SharedInformerFactory(c)
        controller = EndpointSliceController(client=c, factory=factory)

        async def slices(name="web"):
            items, _ = await c.list("EndpointSlice", "default", label_selector=f"kubernetes.io/service-name={name}")
            return items

        async def addresses():
            return sorted(a for sl in await slices() for e in sl.endpoints for a in e.addresses)

        async with running(controller, factory=factory):
            await eventually(lambda: _eq(addresses(), ["10.244.0.2", "10.244.0.3"]), what="slice written")
            [sl] = await slices()
            assert sl.metadata.owner_references[0].uid == svc.metadata.uid
            ep = await eventually(lambda: _get(c, "Endpoints", "web"), what="endpoints")
            assert [a.ip for a in ep.subsets[0].addresses] == ["10.244.0.2"]
            assert [a.ip for a in ep.subsets[0].not_ready_addresses] == ["10.244.0.3"]
            assert [p.port for p in ep.subsets[0].ports] == [8080]
            # b becomes Ready
            b = await c.get("Pod", "b")
            b.status.conditions[0].status = "True"
            await c.update_status(b)
            await eventually(lambda: _ready_count(c, 2), what="b ready in Endpoints")
            # a pod goes
            await c.delete("Pod", "a", grace_period_seconds=0)
            await eventually(lambda: _eq(addresses(), ["10.244.0.3"]), what="a removed")
            assert await slices("nosel") == []
            # the Service goes: its slices and Endpoints too
            await c.delete("Service", "web")
            await eventually(lambda: _eq(slices(), []), what="slices deleted")
            await eventually(lambda: _missing(c, "Endpoints", "web"), what="endpoints deleted")
    asyncio.run(body())


async def _eq(coro, expected):
    return await coro == expected


async def _get(c, kind, name):
    try:
        return await c.get(kind, name)
    except Exception:
        return None


async def _missing(c, kind, name):
    return await _get(c, kind, name) is None


async def _ready_count(c, n):
    ep = await _get(c, "Endpoints", "web")
    return ep is not None and sum(len(s.addresses) for s in ep.subsets) == n


def test_services_get_cluster_ips_and_node_ports_from_the_fake_too():
    async def body():
        c = FakeApiClient()
        a = await c.create(service("a"))
        b = await c.create(service("b", type="NodePort"))
        assert a.spec.cluster_ip != b.spec.cluster_ip and a.spec.cluster_ip.startswith("10.96.")
        assert 30000 <= b.spec.ports[0].node_port <= 32767
        # an update that leaves them out keeps them
        b2 = service("b", type="NodePort")
        updated = await c.update(b2)
        assert updated.spec.cluster_ip == b.spec.cluster_ip
        assert updated.spec.ports[0].node_port == b.spec.ports[0].node_port
    asyncio.run(body())


def test_service_lb_lists_the_ready_nodes():
    async def body():
        c = FakeApiClient()
        for name, ip, ready in (("n1", "10.213.0.3", True), ("n2", "10.213.0.2", True), ("n3", "10.213.0.4", False)):
            n = types_pb2.Node()
            n.metadata.name = name
            await c.create(n)
            n = await c.get("Node", name, "")
            n.status.addresses.add(type="InternalIP", address=ip)
            n.status.conditions.add(type="Ready", status="True" if ready else "False")
            await c.update_status(n)
        await c.create(service("lb", type="LoadBalancer"))
        factory = SharedInformerFactory(c)
        controller = ServiceLbController(client=c, factory=factory)

        async def ingress():
            svc = await c.get("Service", "lb")
            return [i.ip for i in svc.status.load_balancer.ingress]

        async with running(controller, factory=factory):
            await eventually(lambda: _eq(ingress(), ["10.213.0.2", "10.213.0.3"]), what="ingress")
            n3 = await c.get("Node", "n3", "")
            n3.status.conditions[0].status = "True"
            await c.update_status(n3)
            await eventually(lambda: _eq(ingress(), ["10.213.0.2", "10.213.0.3", "10.213.0.4"]), what="n3 in")
    asyncio.run(body())


def test_a_burst_of_pod_events_makes_one_slice_not_duplicates():
    """Reconciles that run before the informer shows the slice just created must not create it again."""
    async def body():
        c = FakeApiClient()
        await c.create(service())
        factory = SharedInformerFactory(c)
        controller = EndpointSliceController(client=c, factory=factory)
        async with running(controller, factory=factory):
            for i in range(20):
                await c.create(pod(f"p{i}", f"10.244.0.{i + 2}"))
                stored = await c.get("Pod", f"p{i}")
                stored.status.CopyFrom(pod(f"p{i}", f"10.244.0.{i + 2}").status)
                await c.update_status(stored)

            async def settled():
                items, _ = await c.list("EndpointSlice", "default")
                return len(items) == 1 and len(items[0].endpoints) == 20
            await eventually(settled, what="one slice of 20")
            await asyncio.sleep(0.5)
            items, _ = await c.list("EndpointSlice", "default")
            assert len(items) == 1
    asyncio.run(body())
