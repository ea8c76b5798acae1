"""ServiceLB, as k3s's: a LoadBalancer Service is served on every node (its
node ports, by each node's service proxy), so its load balancer addresses
are the Ready nodes' addresses — status.loadBalancer.ingress lists each
Ready node's ExternalIP, else its InternalIP, sorted. A Service with a
loadBalancerClass is another implementation's and left alone; a Service
that stops being a LoadBalancer loses the addresses.
"""
from __future__ import annotations

import ipaddress

from google.protobuf.message import Message

from skiff.api import meta
from skiff.api.kinds import service as services
from skiff.client import ApiClient, Conflict, NotFound
from skiff.controller import Controller, EventHandler, Key, SharedInformerFactory, key_of


def node_address(node: Message) -> str:
    by_type = {a.type: a.address for a in node.status.addresses}
    return by_type.get("ExternalIP") or by_type.get("InternalIP", "")


def node_ready(node: Message) -> bool:
    condition = meta.get_condition(node.status.conditions, "Ready")
    return condition is not None and condition.status == "True"


def ingress_ips(nodes: list[Message]) -> list[str]:
    ips = {node_address(n) for n in nodes if node_ready(n)} - {""}
    return sorted(ips, key=lambda ip: ipaddress.ip_address(ip))


def is_ours(svc: Message) -> bool:
    return svc.spec.type == services.LOAD_BALANCER and not svc.spec.HasField("load_balancer_class")


class ServiceLbController(Controller):
    name = "servicelb"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory) -> None:
        super().__init__(metrics=factory.metrics)
        self.client = client
        self.services = self.watch(factory.informer("Service"))
        self.nodes = self.uses(factory.informer("Node"))
        self.nodes.add_event_handler(EventHandler(on_add=self._nodes_changed, on_update=self._nodes_changed,
                                                  on_delete=self._nodes_changed))

    def _nodes_changed(self, key: Key, *nodes: Message) -> None:
        if len(nodes) == 2 and (node_ready(nodes[0]), node_address(nodes[0])) == (node_ready(nodes[1]),
                                                                                  node_address(nodes[1])):
            return   # a heartbeat: nothing a load balancer address depends on changed
        for svc in self.services.lister.list():
            if is_ours(svc):
                self.enqueue(key_of(svc))

    async def reconcile(self, key: Key) -> float | None:
        svc = self.services.get(key)
        if svc is None or svc.spec.type == services.LOAD_BALANCER and not is_ours(svc):
            return None
        wanted = ingress_ips(self.nodes.lister.list()) if is_ours(svc) else []
        if [i.ip for i in svc.status.load_balancer.ingress] == wanted:
            return None
        updated = meta.copy(svc)
        del updated.status.load_balancer.ingress[:]
        for ip in wanted:
            updated.status.load_balancer.ingress.add(ip=ip, ip_mode="VIP")
        try:
            await self.client.update_status(updated)
        except (Conflict, NotFound):
            self.enqueue(key)
        return None
