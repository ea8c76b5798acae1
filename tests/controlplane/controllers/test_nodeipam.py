"""Node IPAM: every node gets its own pod CIDR, persisted, never given twice -
also across a control plane restart."""
import asyncio
import ipaddress

import pytest

from controlplane.controllers.nodeipam import CidrAllocator, CidrsExhausted
from proto.skiff.v1 import types_pb2
from skiff.client import ApiClient


def test_allocator_gives_distinct_subnets_and_reuses_released_ones():
    a = CidrAllocator(cluster_cidr="10.244.0.0/16", node_cidr_mask_size=24)
    first, second = a.allocate("n1"), a.allocate("n2")
    assert (first, second) == ("10.244.0.0/24", "10.244.1.0/24")
    a.release_node("n1")
    assert a.allocate("n3") == "10.244.0.0/24"


def test_allocator_skips_occupied_and_reports_exhaustion():
    a = CidrAllocator(cluster_cidr="10.0.0.0/23", node_cidr_mask_size=24)
    a.occupy("10.0.0.0/24", "old")
    assert a.allocate("n") == "10.0.1.0/24"
    with pytest.raises(CidrsExhausted, match="no free /24 left in cluster CIDR 10.0.0.0/23"):
        a.allocate("m")


def _node(name: str) -> types_pb2.Node:
    n = types_pb2.Node()
    n.metadata.name = name
    return n


async def _cidr_of(c: ApiClient, name: str, *, timeout: float = 20.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        node = await c.get("Node", name)
        if node.spec.pod_cidr:
            return node.spec.pod_cidr
        if loop.time() > deadline:
            raise AssertionError(f"node {name} got no podCIDR")
        await asyncio.sleep(0.05)


@pytest.mark.etcd
def test_nodes_get_distinct_cidrs_that_survive_reregistration_and_restart(controlplane_factory):
    first = controlplane_factory("--cluster-cidr", "10.99.0.0/16", "--node-cidr-mask-size", "24")

    async def phase_one():
        async with ApiClient(first.address) as c:
            for name in ("a", "b", "c"):
                await c.create(_node(name))
            cidrs = {name: await _cidr_of(c, name) for name in ("a", "b", "c")}
            # The agent re-registers its node (Apply without spec.podCIDR): the CIDR stays.
            again, result = await c.apply(_node("a"))
            assert again.spec.pod_cidr == cidrs["a"]
            return cidrs
    cidrs = asyncio.run(phase_one())
    assert len(set(cidrs.values())) == 3
    assert all(ipaddress.ip_network(x).subnet_of(ipaddress.ip_network("10.99.0.0/16")) for x in cidrs.values())
    assert all(ipaddress.ip_network(x).prefixlen == 24 for x in cidrs.values())

    # A second control plane on the same data (a restart) learns what is taken.
    second = controlplane_factory("--cluster-cidr", "10.99.0.0/16", "--node-cidr-mask-size", "24")

    async def phase_two():
        async with ApiClient(second.address) as c:
            await c.create(_node("d"))
            return await _cidr_of(c, "d")
    assert asyncio.run(phase_two()) not in cidrs.values()


def test_distinct_cidrs_kept_on_reregistration_and_learned_on_restart_without_etcd():
    from controlplane.controllers.nodeipam import NodeIpamController
    from controlplane.testing import FakeApiClient, eventually, running
    from skiff.controller import SharedInformerFactory

    def ipam(c):
        factory = SharedInformerFactory(c)
        return NodeIpamController(client=c, factory=factory, cluster_cidr="10.99.0.0/16",
                                  node_cidr_mask_size=24), factory

    async def cidr(c, name):
        return (await c.get("Node", name)).spec.pod_cidr

    async def body():
        first = FakeApiClient()
        controller, factory = ipam(first)
        async with running(controller, factory=factory):
            for name in ("a", "b", "c"):
                await first.create(_node(name))
            cidrs = {n: await eventually(lambda n=n: cidr(first, n), what=f"{n}'s CIDR") for n in "abc"}
            again, _ = await first.apply(_node("a"))     # an agent re-registering
            assert again.spec.pod_cidr == cidrs["a"]
        assert len(set(cidrs.values())) == 3
        assert all(ipaddress.ip_network(x).prefixlen == 24 for x in cidrs.values())
        # A restart: a new controller over the same objects learns what is taken.
        second = FakeApiClient(first.store)
        controller, factory = ipam(second)
        async with running(controller, factory=factory):
            await second.create(_node("d"))
            assert await eventually(lambda: cidr(second, "d"), what="d's CIDR") not in cidrs.values()
    asyncio.run(asyncio.wait_for(body(), 30))
