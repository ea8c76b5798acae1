"""Start and stop the gRPC server that carries the Api service."""
from __future__ import annotations

import asyncio

import grpc

from controlplane import store as st
from controlplane.api.guard import grpc_guard
from controlplane.api.inflight import DEFAULT_MUTATING, DEFAULT_READONLY, InflightLimits
from controlplane.auth import Guard
from skiff.pki import Credentials
from skiff.grpcdecoding import add_servicer
from controlplane.api.proxy import AgentProxy
from controlplane.api.service import ApiService
from controlplane.api.registry import Admission
from controlplane.store.cacher import DEFAULT_CAPACITY, Cacher
from controlplane.metrics import Metrics
from proto.skiff.v1 import api_pb2_grpc
from skiff.api import kinds

MAX_REQUEST_BYTES = 3 * 1024 * 1024


class ApiServer:
    def __init__(self, *, store: st.Store, metrics: Metrics, listen: str, admission: Admission = Admission(),
                 tls: Credentials | None = None, guard: Guard | None = None,
                 agent_credentials: Credentials | None = None, watch_cache_size: int = DEFAULT_CAPACITY,
                 max_requests_inflight: int = DEFAULT_READONLY,
                 max_mutating_requests_inflight: int = DEFAULT_MUTATING) -> None:
        """`tls` (the serving certificate and the CA clients' certificates must chain to) and `guard`
        make it secure (decision 32): TLS, a client certificate required, every call authorized;
        `agent_credentials` is the client certificate the agents' service is dialed with.
        `watch_cache_size`: events the watch cache keeps per kind (decision 38); 0 serves lists and
        watches from the store itself (one store watch per client)."""
        self.proxy = AgentProxy(store=store, credentials=agent_credentials)
        self.tls = tls
        # Lists and watches of every client (gRPC and REST: the same registry) from the watch cache;
        # gets and writes go straight to the store.
        self.cacher = Cacher(store, capacity=watch_cache_size) if watch_cache_size > 0 else None
        if self.cacher is not None:
            metrics.watch_cache.cachers.append(self.cacher)
        self.service = ApiService(store=self.cacher or store, metrics=metrics, proxy=self.proxy,
                                  admission=admission)
        self.service.guard = guard   # AccessReview asks it
        # kube-apiserver's max-in-flight limits, one for both doors (the REST server is given it too).
        self.inflight = InflightLimits(readonly=max_requests_inflight, mutating=max_mutating_requests_inflight,
                                       current=metrics.inflight_current, dropped=metrics.inflight_dropped)
        self.service.inflight = self.inflight
        self.listen = listen
        # A request larger than any object the store takes (1.5 MiB) plus its
        # envelope is refused by gRPC before it is read into memory and parsed
        # (a 20 MB apply took 7 s and 140 MB of RSS): Kubernetes' API server
        # caps a request body at 3 MB the same way.
        self._server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                                                ("grpc.so_reuseport", 0)])
        add_servicer(api_pb2_grpc.add_ApiServicer_to_server, self.service, self._server, "skiff.v1.Api",
                     guard=grpc_guard(guard) if guard is not None else None)
        # `skiff image load|push`: archives streamed on to a node's agent (decision 33).
        from controlplane.api.images import ImagesService, images_guard
        from proto.skiff.v1 import images_pb2_grpc
        add_servicer(images_pb2_grpc.add_ImagesServicer_to_server, ImagesService(store=store, proxy=self.proxy),
                     self._server, "skiff.v1.Images", guard=images_guard(guard) if guard is not None else None)
        self.port = 0
        self._warming: asyncio.Task | None = None

    async def start(self) -> int:
        """Bind and serve; returns the bound port (useful with port 0)."""
        try:
            if self.tls is None:
                self.port = self._server.add_insecure_port(self.listen)
            else:   # Python's gRPC can require a client certificate or not ask for one: it requires one
                credentials = grpc.ssl_server_credentials([(self.tls.key, self.tls.cert)],
                                                          root_certificates=self.tls.ca, require_client_auth=True)
                self.port = self._server.add_secure_port(self.listen, credentials)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {self.listen}: {exc}") from None
        if self.port == 0:
            raise OSError(f"cannot listen on {self.listen}: address in use or not available")
        await self._server.start()
        if self.cacher is not None:
            self._warming = self.cacher.warm(kinds.all_kinds())
        return self.port

    async def stop(self, *, grace: float = 2.0) -> None:
        await self._server.stop(grace)
        await self.proxy.close()
        await self.service.registry.close()
        if self.cacher is not None:
            if self._warming is not None:
                self._warming.cancel()
            await self.cacher.stop()
            if self.cacher in self.service.metrics.watch_cache.cachers:
                self.service.metrics.watch_cache.cachers.remove(self.cacher)
