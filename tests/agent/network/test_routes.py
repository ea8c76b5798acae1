"""The host-gw route programming (agent/network/routes.py, agent/noderoutes.py) on a fake netlink:
what the routing table holds as Node objects come, change and go."""
from __future__ import annotations

import asyncio

from agent.network.routes import FakeRouteTable, NodeRoute, desired_routes, plan, sync
from agent.noderoutes import NodeRoutesController
from proto.skiff.v1 import types_pb2

CLUSTER = "10.177.0.0/16"


def nodes(*rows: tuple[str, str, str]) -> list[NodeRoute]:
    return [NodeRoute(name=n, pod_cidr=c, node_ip=ip) for n, c, ip in rows]


def test_a_route_to_every_other_node_and_none_to_itself():
    desired = desired_routes(nodes(("n1", "10.177.0.0/24", "10.213.0.2"), ("n2", "10.177.1.0/24", "10.213.0.3"),
                                   ("n3", "10.177.2.0/24", "10.213.0.4")), self_name="n1", cluster_cidr=CLUSTER)
    assert desired == {"10.177.1.0/24": "10.213.0.3", "10.177.2.0/24": "10.213.0.4"}


def test_nodes_without_cidr_or_address_or_outside_the_cluster_get_no_route():
    desired = desired_routes(nodes(("n2", "", "10.213.0.3"), ("n3", "10.177.2.0/24", ""),
                                   ("evil", "0.0.0.0/0", "10.213.0.9"), ("lan", "192.168.1.0/24", "10.213.0.8"),
                                   ("bad", "not-a-cidr", "10.213.0.7")), self_name="n1", cluster_cidr=CLUSTER)
    assert desired == {}


def test_sync_adds_changes_and_removes_only_its_own_routes():
    table = FakeRouteTable(routes={"10.177.5.0/24": "10.213.0.9", "10.177.1.0/24": "10.213.0.30"},
                           foreign={"10.0.0.0/8": "192.0.2.1"})
    done = sync(table, {"10.177.1.0/24": "10.213.0.3", "10.177.2.0/24": "10.213.0.4"})
    assert table.routes == {"10.177.1.0/24": "10.213.0.3", "10.177.2.0/24": "10.213.0.4"}
    assert table.foreign == {"10.0.0.0/8": "192.0.2.1"}
    assert done.delete == ["10.177.5.0/24"]
    assert done.replace == {"10.177.1.0/24": "10.213.0.3", "10.177.2.0/24": "10.213.0.4"}
    table.calls.clear()
    assert not sync(table, dict(table.routes)) and table.calls == []   # nothing to do: no netlink call


def test_plan_is_the_difference():
    p = plan(desired={"a": "1", "b": "2"}, current={"b": "2", "c": "3"})
    assert (p.replace, p.delete) == ({"a": "1"}, ["c"])


class FakeNodes:
    """The little of an Informer the controller reads: list(), add_handler()."""

    def __init__(self) -> None:
        self.objects: dict[str, types_pb2.Node] = {}
        self.handlers = []

    def put(self, name: str, cidr: str, ip: str) -> None:
        node = types_pb2.Node()
        node.metadata.name = name
        node.spec.pod_cidr = cidr
        node.status.addresses.add(type="Hostname", address=name)
        node.status.addresses.add(type="InternalIP", address=ip)
        self.objects[name] = node
        for handler in self.handlers:
            handler(("", name))

    def remove(self, name: str) -> None:
        del self.objects[name]
        for handler in self.handlers:
            handler(("", name))

    def list(self):
        return list(self.objects.values())

    def add_handler(self, fn) -> None:
        self.handlers.append(fn)


def test_the_controller_follows_the_nodes_it_watches():
    async def scenario() -> None:
        informer, table = FakeNodes(), FakeRouteTable()
        controller = NodeRoutesController(nodes=informer, table=table, node_name="n1", cluster_cidr=CLUSTER)
        for name, cidr, ip in (("n1", "10.177.0.0/24", "10.213.0.2"), ("n2", "10.177.1.0/24", "10.213.0.3"),
                               ("n3", "10.177.2.0/24", "10.213.0.4")):
            informer.put(name, cidr, ip)
        await controller.process_next()
        assert table.routes == {"10.177.1.0/24": "10.213.0.3", "10.177.2.0/24": "10.213.0.4"}
        informer.remove("n3")                 # node remove: its route goes
        await controller.process_next()
        assert table.routes == {"10.177.1.0/24": "10.213.0.3"}
        informer.put("n2", "10.177.1.0/24", "10.213.0.7")   # a node with a new address
        await controller.process_next()
        assert table.routes == {"10.177.1.0/24": "10.213.0.7"}
        controller.queue.shutdown()

    asyncio.run(scenario())
