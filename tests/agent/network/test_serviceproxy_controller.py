"""The agent's service proxy loop over FakeApiClient: informers in, rate-limited syncs out."""
from __future__ import annotations

import asyncio

from agent.network.serviceproxy.controller import ServiceProxyController
from agent.network.serviceproxy.proxy import SyncResult
from controlplane.testing import FakeApiClient, eventually, running
from proto.skiff.v1 import services_pb2
from skiff.controller import SharedInformerFactory


class RecordingProxy:
    """ServiceProxy's surface: remembers each sync's ports instead of calling nft."""

    def __init__(self) -> None:
        self.syncs: list[dict] = []

    def sync(self, ports) -> SyncResult:
        self.syncs.append(dict(ports))
        return SyncResult(full=len(self.syncs) == 1, seconds=0.0, changed_ports=len(ports),
                          stale_udp_endpoints=frozenset())


def service(name: str, cluster_ip: str) -> services_pb2.Service:
    s = services_pb2.Service()
    s.metadata.namespace, s.metadata.name = "default", name
    s.spec.cluster_ip = cluster_ip
    s.spec.selector["app"] = name
    s.spec.ports.add(name="http", protocol="TCP", port=80, target_port="8080")
    return s


def endpoint_slice(service_name: str, *ips: str) -> services_pb2.EndpointSlice:
    es = services_pb2.EndpointSlice(address_type="IPv4")
    es.metadata.namespace, es.metadata.name = "default", f"{service_name}-1"
    es.metadata.labels["kubernetes.io/service-name"] = service_name
    es.ports.add(name="http", protocol="TCP", port=8080)
    for ip in ips:
        es.endpoints.add(addresses=[ip], node_name="n1")
    return es


def test_services_and_slices_become_one_coalesced_sync_per_interval():
    asyncio.run(_coalesced())


async def _coalesced():
    client = FakeApiClient()
    await client.create(service("web", "10.96.0.10"))
    await client.create(endpoint_slice("web", "10.244.1.5"))
    factory = SharedInformerFactory(client)
    proxy = RecordingProxy()
    now = [100.0]   # the controller's clock: no second sync can come before the test moves it
    controller = ServiceProxyController(services=factory.informer("Service"),
                                        slices=factory.informer("EndpointSlice"), proxy=proxy, min_interval=0.5,
                                        clock=lambda: now[0])
    async with running(controller, factory=factory):
        first = await eventually(lambda: proxy.syncs and proxy.syncs[0], what="the first sync")
        assert [e.ip for e in first["default/web/tcp/http"].endpoints] == ["10.244.1.5"]
        # Several changes inside the interval: one more sync, with all of them.
        await client.create(service("api", "10.96.0.11"))
        slice_ = await client.get("EndpointSlice", "web-1", "default")
        slice_.endpoints.add(addresses=["10.244.2.7"], node_name="n2")
        await client.update(slice_)
        await client.delete("Service", "api", "default")
        await asyncio.sleep(1.0)
        assert len(proxy.syncs) == 1   # the interval since the first sync is not over
        now[0] += 0.5
        second = await eventually(lambda: len(proxy.syncs) == 2 and proxy.syncs[1], what="the second sync")
        assert sorted(second) == ["default/web/tcp/http"]
        assert sorted(e.ip for e in second["default/web/tcp/http"].endpoints) == ["10.244.1.5", "10.244.2.7"]
        now[0] += 0.5
        await asyncio.sleep(1.0)
        assert len(proxy.syncs) == 2   # nothing changed since
