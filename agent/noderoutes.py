"""The agent's pod-network controller: routes to the other nodes' pods from
the Node objects it watches (the host-gw backend; agent/network/routes.py).

One key, the whole table: any Node added, changed or deleted enqueues it,
and `reconcile` makes Skiff's routes equal what the listed Nodes ask for —
level-triggered, so a missed event or a restart only delays a route, and a
node that goes takes its route with it. Netlink blocks, so the table is
written from a thread.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Hashable

from agent.network.routes import NodeRoute, RouteTable, desired_routes, sync
from skiff.controller import Controller, Informer

log = logging.getLogger(__name__)

ROUTES_KEY = "routes"
RESYNC_SECONDS = 60.0   # routes someone deleted by hand come back


def node_route(node) -> NodeRoute:
    ip = next((a.address for a in node.status.addresses if a.type == "InternalIP"), "")
    return NodeRoute(name=node.metadata.name, pod_cidr=node.spec.pod_cidr, node_ip=ip)


class NodeRoutesController(Controller):
    name = "noderoutes"

    def __init__(self, *, nodes: Informer, table: RouteTable, node_name: str, cluster_cidr: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.nodes = nodes
        self.table = table
        self.node_name = node_name
        self.cluster_cidr = cluster_cidr
        nodes.add_handler(lambda _key: self.enqueue(ROUTES_KEY))
        self.uses(nodes)

    async def started(self) -> list[asyncio.Task]:
        self.enqueue(ROUTES_KEY)   # the first sync, even with no Node event (a lone node removes stale routes)
        return []

    async def reconcile(self, key: Hashable) -> float | None:
        desired = desired_routes((node_route(n) for n in self.nodes.list()), self_name=self.node_name,
                                 cluster_cidr=self.cluster_cidr)
        done = await asyncio.to_thread(sync, self.table, desired)
        for cidr, gateway in done.replace.items():
            log.info("route %s via %s", cidr, gateway)
        for cidr in done.delete:
            log.info("route %s removed: its node is gone", cidr)
        return RESYNC_SECONDS
