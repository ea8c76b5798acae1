"""Start and stop the gRPC server that carries the Api service."""
from __future__ import annotations

import grpc

from controlplane import store as st
from skiff.grpcdecoding import add_servicer
from controlplane.api.proxy import AgentProxy
from controlplane.api.service import ApiService
from controlplane.api.registry import Admission
from controlplane.metrics import Metrics
from proto.skiff.v1 import api_pb2_grpc

MAX_REQUEST_BYTES = 3 * 1024 * 1024


class ApiServer:
    def __init__(self, *, store: st.Store, metrics: Metrics, listen: str, admission: Admission = Admission()) -> None:
        self.proxy = AgentProxy(store=store)
        self.service = ApiService(store=store, metrics=metrics, proxy=self.proxy, admission=admission)
        self.listen = listen
        # A request larger than any object the store takes (1.5 MiB) plus its
        # envelope is refused by gRPC before it is read into memory and parsed
        # (a 20 MB apply took 7 s and 140 MB of RSS): Kubernetes' API server
        # caps a request body at 3 MB the same way.
        self._server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                                                ("grpc.so_reuseport", 0)])
        add_servicer(api_pb2_grpc.add_ApiServicer_to_server, self.service, self._server, "skiff.v1.Api")
        self.port = 0

    async def start(self) -> int:
        """Bind and serve; returns the bound port (useful with port 0)."""
        try:
            self.port = self._server.add_insecure_port(self.listen)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {self.listen}: {exc}") from None
        if self.port == 0:
            raise OSError(f"cannot listen on {self.listen}: address in use or not available")
        await self._server.start()
        return self.port

    async def stop(self, *, grace: float = 2.0) -> None:
        await self._server.stop(grace)
        await self.proxy.close()
