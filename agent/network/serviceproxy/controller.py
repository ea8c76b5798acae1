"""The agent's service proxy loop: Service and EndpointSlice informers -> ServiceProxy.sync.

    Service / EndpointSlice events ─► dirty service keys + enqueue(SYNC) ─► reconcile(SYNC)
                                                                            at most once per
                                                                            min_interval

One queue key for the whole table, so any number of events between two syncs
coalesce into one (the queue holds a key once), and `reconcile` waits out the
rest of `min_interval` since the last sync before writing (kube-proxy's
minSyncPeriod). Only the dirty Services are converted again; the proxy then
renders only the ports that changed (agent/network/serviceproxy/proxy.py).
The first sync writes the whole table, replacing one a crashed agent left.
The table outlives the agent (pods keep reaching Services while it restarts,
as with kube-proxy); `skiff down --purge` removes it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Hashable

from agent.network import conntrack
from agent.network.serviceproxy.model import ServicePort
from agent.network.serviceproxy.objects import SERVICE_NAME_LABEL, service_ports
from agent.network.serviceproxy.proxy import ServiceProxy
from skiff.controller import Controller, EventHandler, Informer

log = logging.getLogger(__name__)

SYNC_KEY = "services"
MIN_INTERVAL_SECONDS = 1.0
RESYNC_SECONDS = 300.0   # level-triggered safety net: look again now and then (a no-op when nothing changed)


class ServiceProxyController(Controller):
    name = "serviceproxy"

    def __init__(self, *, services: Informer, slices: Informer, proxy: ServiceProxy,
                 min_interval: float = MIN_INTERVAL_SECONDS, clock=time.monotonic, **kwargs) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.slices = slices
        self.proxy = proxy
        self.min_interval = min_interval
        self.clock = clock
        self._dirty: set[tuple[str, str]] = set()
        self._all_dirty = True
        self._ports: dict[tuple[str, str], list[ServicePort]] = {}
        self._last_sync: float | None = None
        self.last_result = None
        services.add_handler(self._service_changed)
        slices.add_event_handler(EventHandler(on_add=self._slice_changed, on_update=self._slice_changed,
                                              on_delete=self._slice_changed))
        self.uses(services)
        self.uses(slices)

    def _service_changed(self, key) -> None:
        self._dirty.add(tuple(key))
        self.enqueue(SYNC_KEY)

    def _slice_changed(self, _key, *objs) -> None:
        for obj in objs:
            name = obj.metadata.labels.get(SERVICE_NAME_LABEL)
            if name:
                self._dirty.add((obj.metadata.namespace, name))
        self.enqueue(SYNC_KEY)

    async def started(self) -> list[asyncio.Task]:
        self.enqueue(SYNC_KEY)   # the first (full) sync, even with no Service at all
        return []

    def _refresh(self) -> None:
        """Convert the dirty Services (all of them the first time) again from the caches."""
        if self._all_dirty:
            dirty = {tuple(k) for k in self.services.keys()} | set(self._ports)
            self._all_dirty = False
        else:
            dirty, self._dirty = self._dirty, set()
        self._dirty -= dirty
        for key in dirty:
            svc = self.services.get(key)
            if svc is None:
                self._ports.pop(key, None)
                continue
            namespace, name = key
            slices = [s for s in self.slices.lister.with_label(SERVICE_NAME_LABEL, name)
                      if s.metadata.namespace == namespace]
            self._ports[key] = service_ports(svc, slices)

    async def reconcile(self, key: Hashable) -> float | None:
        now = self.clock()
        if self._last_sync is not None and now - self._last_sync < self.min_interval:
            return self.min_interval - (now - self._last_sync)   # coalesce: sync once the interval is over
        self._refresh()
        ports = {p.key: p for ports in self._ports.values() for p in ports}
        self._last_sync = now
        result = await asyncio.to_thread(self.proxy.sync, ports)
        self.last_result = result
        if result.changed_ports:
            log.info("services: %s sync of %d port(s) (%d changed) in %.0f ms", "full" if result.full else "partial",
                     len(ports), result.changed_ports, result.seconds * 1000)
        for ip in result.stale_udp_endpoints:
            await asyncio.to_thread(conntrack.forget_udp_flows_to, pod_ip=ip)
        return RESYNC_SECONDS


def service_proxy_controller(*, informers, table: str, node, **kwargs) -> ServiceProxyController | None:
    """The controller over the agent's shared informers, or None (logged) when this
    build has no Service/EndpointSlice kinds yet."""
    from skiff.api import kinds
    try:
        kinds.kind_named("Service")
        kinds.kind_named("EndpointSlice")
    except kinds.UnknownKind:
        log.warning("service proxy: this build has no Service/EndpointSlice kinds; no Service is proxied")
        return None
    return ServiceProxyController(services=informers.informer("Service"), slices=informers.informer("EndpointSlice"),
                                  proxy=ServiceProxy(table=table, node=node), **kwargs)
