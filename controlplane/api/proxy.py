"""Logs, Exec and Stats: passed through to the agent of the pod's node.

The CLI only knows the control plane's address; the control plane finds the
node (spec.nodeName), dials its InternalIP at
status.daemonEndpoints.kubeletEndpoint.Port with the `Agent` service, and
streams both ways. Channels to agents are kept open and reused.
"""
from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import AsyncIterator

import grpc

from controlplane import store as st
from controlplane.api.errors import RpcAbort
from proto.skiff.v1 import api_pb2, api_pb2_grpc, types_pb2
from skiff.api import kinds
from skiff.pki import Credentials

DEFAULT_AGENT_PORT = 10250


def agent_address(node: types_pb2.Node) -> str:
    """host:port of a node's agent service."""
    by_type = {a.type: a.address for a in node.status.addresses}
    host = by_type.get("InternalIP") or by_type.get("Hostname") or node.metadata.name
    port = node.status.daemon_endpoints.kubelet_endpoint.port or DEFAULT_AGENT_PORT
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AgentProxy:
    def __init__(self, *, store: st.Store, credentials: Credentials | None = None) -> None:
        self.store = store
        # Secure mode: mutual TLS to the agents, with the control plane's client certificate
        # (the agent accepts no other) and the cluster CA its serving certificate chains to.
        self.credentials = credentials
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        await asyncio.gather(*(c.close() for c in channels.values()), return_exceptions=True)

    def channel(self, address: str) -> grpc.aio.Channel:
        """The (kept) channel to the agent at `address`; other services of the agent use it too."""
        channel = self._channels.get(address)
        if channel is None:
            if self.credentials is None:
                channel = grpc.aio.insecure_channel(address)
            else:
                channel = grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(
                    root_certificates=self.credentials.ca, private_key=self.credentials.key,
                    certificate_chain=self.credentials.cert))
            self._channels[address] = channel
        return channel

    def _stub(self, address: str) -> api_pb2_grpc.AgentStub:
        return api_pb2_grpc.AgentStub(self.channel(address))

    async def _node_address(self, node_name: str) -> str:
        node = await self.store.get(kinds.kind_named("Node"), "", node_name)
        return agent_address(node)

    async def _pod_agent(self, namespace: str, name: str) -> tuple[api_pb2_grpc.AgentStub, str]:
        pod = await self.store.get(kinds.kind_named("Pod"), namespace or "default", name)
        if not pod.spec.node_name:
            raise RpcAbort(grpc.StatusCode.FAILED_PRECONDITION,
                           f'pod "{name}" is not scheduled to a node yet (phase {pod.status.phase or "Pending"})')
        address = await self._node_address(pod.spec.node_name)
        return self._stub(address), address

    @staticmethod
    def _agent_error(exc: grpc.aio.AioRpcError, address: str) -> Exception:
        """Keep the agent's own code (NOT_FOUND for a missing container ...);
        an unreachable agent names its address."""
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            return st.Unavailable(f"cannot reach the node agent at {address}: {exc.details()}")
        return RpcAbort(exc.code(), exc.details() or exc.code().name)

    async def logs(self, request: api_pb2.LogsRequest) -> AsyncIterator[api_pb2.LogChunk]:
        stub, address = await self._pod_agent(request.namespace, request.name)
        call = stub.Logs(request)
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as exc:
            raise self._agent_error(exc, address) from None
        finally:
            call.cancel()

    async def exec(self, requests: AsyncIterator[api_pb2.ExecInput]) -> AsyncIterator[api_pb2.ExecOutput]:
        first = await self._exec_start("Exec", requests)
        async with aclosing(self._stream_to_agent("Exec", first, requests)) as outputs:
            async for out in outputs:
                yield out

    async def attach(self, requests: AsyncIterator[api_pb2.ExecInput]) -> AsyncIterator[api_pb2.ExecOutput]:
        first = await self._exec_start("Attach", requests)
        async with aclosing(self._stream_to_agent("Attach", first, requests)) as outputs:
            async for out in outputs:
                yield out

    async def port_forward(self, requests: AsyncIterator[api_pb2.PortForwardInput]
                           ) -> AsyncIterator[api_pb2.PortForwardOutput]:
        first = await anext(requests, None)
        if first is None or first.WhichOneof("input") != "start":
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, "the first PortForward message must be `start`",
                           field_path="start")
        # Nothing past `start` goes to the agent before it has connected (its `connected`
        # output): a refused port then ends the stream with the agent's status, not with
        # a write that raced it (grpc/grpc#36066: "Internal error from Core").
        connected = asyncio.Event()

        async def after_connect() -> AsyncIterator[api_pb2.PortForwardInput]:
            await connected.wait()
            async for message in requests:
                yield message

        async with aclosing(self._stream_to_agent("PortForward", first, after_connect())) as outputs:
            async for out in outputs:
                connected.set()
                yield out

    @staticmethod
    async def _exec_start(method: str, requests: AsyncIterator[api_pb2.ExecInput]) -> api_pb2.ExecInput:
        first = await anext(requests, None)
        if first is None:
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, f"no {method} message: the first one must be `start`",
                           field_path="start")
        if first.WhichOneof("input") != "start":
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, f"the first {method} message must be `start`",
                           field_path="start")
        return first

    async def _stream_to_agent(self, method: str, first, requests: AsyncIterator) -> AsyncIterator:
        """A bidirectional stream to the agent of the pod `first.start` names:
        `first`, then the rest of `requests`, in; the agent's messages out."""
        stub, address = await self._pod_agent(first.start.namespace, first.start.name)

        async def forward() -> AsyncIterator:
            yield first
            async for message in requests:
                yield message

        call = getattr(stub, method)(forward())
        try:
            async for out in call:
                yield out
        except grpc.aio.AioRpcError as exc:
            raise self._agent_error(exc, address) from None
        finally:
            call.cancel()

    async def stats(self, request: api_pb2.StatsRequest) -> api_pb2.NodeStats:
        address = await self._node_address(request.node_name)
        try:
            return await self._stub(address).Stats(request, timeout=30)
        except grpc.aio.AioRpcError as exc:
            raise self._agent_error(exc, address) from None
