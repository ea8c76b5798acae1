"""Node IPAM: give every node a pod CIDR (spec.podCIDR) from the cluster CIDR.

The allocation is persisted in the Node object itself (written with
compare-and-swap), so the set of Node objects is the allocation table: on
start the controller learns every CIDR in use from its informer, and a CIDR
is never given to two nodes. A node that is deleted frees its CIDR.
Assumes one running instance (the control plane runs one; see the report on
leader election).
"""
from __future__ import annotations

import ipaddress
import logging

from skiff.api import meta
from skiff.client import ApiClient, NotFound
from skiff.controller import Controller, Key, SharedInformerFactory

log = logging.getLogger(__name__)


class CidrsExhausted(RuntimeError):
    pass


class CidrAllocator:
    """Pure bookkeeping of which node subnets of the cluster CIDR are taken."""

    def __init__(self, *, cluster_cidr: str, node_cidr_mask_size: int) -> None:
        self.network = ipaddress.ip_network(cluster_cidr)
        self.mask = node_cidr_mask_size
        self.taken: dict[str, str] = {}  # cidr -> node name

    def occupy(self, cidr: str, node: str) -> None:
        self.taken[str(ipaddress.ip_network(cidr, strict=False))] = node

    def release_node(self, node: str) -> None:
        for cidr in [c for c, n in self.taken.items() if n == node]:
            del self.taken[cidr]

    def allocate(self, node: str) -> str:
        for subnet in self.network.subnets(new_prefix=self.mask):
            cidr = str(subnet)
            if cidr not in self.taken:
                self.taken[cidr] = node
                return cidr
        raise CidrsExhausted(f"no free /{self.mask} left in cluster CIDR {self.network} "
                             f"({len(self.taken)} nodes hold one)")


class NodeIpamController(Controller):
    name = "nodeipam"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory, cluster_cidr: str,
                 node_cidr_mask_size: int) -> None:
        super().__init__(metrics=factory.metrics)
        self.client = client
        self.nodes = self.watch(factory.informer("Node"))
        self.allocator = CidrAllocator(cluster_cidr=cluster_cidr, node_cidr_mask_size=node_cidr_mask_size)

    async def started(self) -> list:
        # Learn every CIDR already given before handing out any new one.
        for node in self.nodes.list():
            if node.spec.pod_cidr:
                self.allocator.occupy(node.spec.pod_cidr, node.metadata.name)
        return []

    async def reconcile(self, key: Key) -> None:
        name = key[1]
        node = self.nodes.get(key)
        if node is None:
            self.allocator.release_node(name)
            return
        if node.spec.pod_cidr:
            self.allocator.occupy(node.spec.pod_cidr, name)
            return
        cidr = self.allocator.allocate(name)
        updated = meta.copy(node)
        updated.spec.pod_cidr = cidr
        del updated.spec.pod_cidrs[:]
        updated.spec.pod_cidrs.append(cidr)
        try:
            await self.client.update(updated)  # CAS on the resourceVersion we read
        except NotFound:
            self.allocator.release_node(name)
            return
        except Exception:
            self.allocator.release_node(name)
            raise
        log.info("node %s: podCIDR %s", name, cidr)
