"""NodeDns: the agent's cluster DNS and Service variables, wired from its informers.

    Agent.start ── NodeDns(informers, settings) ── Service + EndpointSlice informers
        (one cluster-wide watch each, shared with anything else in the agent)
    ...pod network up ── start(address): Service cache synced (bounded), then
        DnsServer on address:53 (the bridge's gateway, decision 26)
    pod workers ── resolv_conf(pod), service_env(pod)
    Agent.stop ── stop(): the sockets closed (the address is the bridge's: nothing else to undo)

A node without pod networking, or whose address cannot be bound, serves no
DNS: its ClusterFirst pods get the node's resolvers (kubelet's fallback
when it has no cluster DNS), logged once.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from agent.dns.informerview import InformerView, service_info
from agent.dns.resolvconf import ClusterDns, HostResolv, resolv_conf
from agent.dns.resolver import Resolver
from agent.dns.server import DnsServer, Upstream
from agent.envvars import service_env
from proto.skiff.v1 import types_pb2
from skiff.controller import Informer, SharedInformerFactory

log = logging.getLogger(__name__)

SYNC_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class DnsSettings:
    enabled: bool = True
    domain: str = "cluster.local"
    upstreams: tuple[str, ...] = ()     # "IP" or "IP:PORT", tried in order
    port: int = 53


class NodeDns:
    def __init__(self, *, informers: SharedInformerFactory, settings: DnsSettings,
                 host_resolv_path: str = "/etc/resolv.conf") -> None:
        self.settings = settings
        self.host_resolv_path = host_resolv_path
        self.services: Informer = informers.informer("Service")
        self.slices: Informer = informers.informer("EndpointSlice")
        self.resolver = Resolver(view=InformerView(services=self.services, slices=self.slices),
                                 domain=settings.domain)
        self.server: DnsServer | None = None
        self.address = ""

    async def start(self, address: str) -> None:
        """Wait (bounded) for the Service cache, then serve on address (no DNS on failure, logged)."""
        try:
            await asyncio.wait_for(asyncio.gather(self.services.wait_synced(), self.slices.wait_synced()),
                                   SYNC_WAIT_SECONDS)
        except asyncio.TimeoutError:
            log.warning("cluster DNS: Services not listed within %.0f s; serving what arrives", SYNC_WAIT_SECONDS)
        if not self.settings.enabled or not address:
            return
        server = DnsServer(resolver=self.resolver,
                           upstreams=tuple(Upstream.parse(u) for u in self.settings.upstreams))
        try:
            await server.start(address, self.settings.port)
        except OSError as exc:
            log.error("cluster DNS: cannot serve on %s:%d (%s); pods get the node's resolvers",
                      address, self.settings.port, exc)
            return
        self.server, self.address = server, address

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    def resolv_conf(self, pod: types_pb2.Pod) -> str:
        return resolv_conf(pod, cluster=ClusterDns(self.address, self.settings.domain),
                           host=HostResolv.read(self.host_resolv_path))

    def service_env(self, pod: types_pb2.Pod) -> dict[str, str]:
        links = pod.spec.enable_service_links if pod.spec.HasField("enable_service_links") else True
        return service_env((service_info(s) for s in self.services.list()),
                           namespace=pod.metadata.namespace or "default", enable_service_links=links)
