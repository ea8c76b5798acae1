"""The control plane's `Images` service (images.proto, decision 33): `skiff image load|push`
from any client stream an image archive here; it goes on, as it arrives, to the Images
service of one node's agent (the one named, else the first Ready node serving images to its
peers), which loads it into its store; the other nodes fetch it from there. The client needs
a route to the API only, as for logs and exec (controlplane/api/proxy.py).

`skiff build --cluster` sends a build context the same way (Build): the node builds it into its
store. The bytes flow once the node has accepted the stream (its checks passed): its first
answer, relayed to the client, which for a load names the layers the node has already.

Secure mode: the caller must be allowed `create` on `nodes/images` to load, `nodes/build` to
build (the node's name; cluster-admin is); the agent accepts the stream only with the control
plane's certificate.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import grpc

from controlplane import store as st
from controlplane.api.proxy import AgentProxy, agent_address
from proto.skiff.v1 import images_pb2, images_pb2_grpc, types_pb2
from skiff.api import kinds

REGISTRY_ANNOTATION = "skiff.io/image-registry"   # agent/peerimages.py


def _ready(node: types_pb2.Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


class ImagesService(images_pb2_grpc.ImagesServicer):
    def __init__(self, *, store: st.Store, proxy: AgentProxy) -> None:
        self.store, self.proxy = store, proxy

    async def _node(self, name: str, purpose: str) -> types_pb2.Node:
        kind = kinds.kind_named("Node")
        if name:
            try:
                return await self.store.get(kind, "", name)
            except st.NotFound:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f'nodes "{name}" not found') from None
        nodes, _ = await self.store.list(kind, "")
        candidates = sorted((n for n in nodes if _ready(n) and n.metadata.annotations.get(REGISTRY_ANNOTATION)
                             and not n.spec.unschedulable), key=lambda n: n.metadata.name)
        if not candidates:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                         f"no Ready node serves images to its peers (the agents' --registry-port) {purpose}")
        return candidates[0]

    async def Load(self, request_iterator, context) -> AsyncIterator[images_pb2.ImageLoadProgress]:
        async for out in self._to_node("Load", request_iterator, context, "image load: no archive was sent"):
            yield out

    async def Build(self, request_iterator, context) -> AsyncIterator[images_pb2.ImageBuildProgress]:
        async for out in self._to_node("Build", request_iterator, context, "image build: nothing was sent"):
            yield out

    async def _to_node(self, method: str, request_iterator, context, nothing: str) -> AsyncIterator:
        """The stream on to the Images service of the node the first message names (else
        the first Ready one serving images), relayed both ways as it comes: the node's
        acceptance (a progress message with its name; for a load, the layers it has) reaches the
        client before the client sends its bytes, a refusal instead of it."""
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, nothing)
            return
        try:
            node = await self._node(first.node_name, "to load into" if method == "Load" else "to build on")
        except _Abort as exc:
            await context.abort(exc.code, exc.message)
            return
        address = agent_address(node)
        stub = images_pb2_grpc.ImagesStub(self.proxy.channel(address))
        first.node_name = node.metadata.name

        node_accepted = asyncio.Event()

        async def forward() -> AsyncIterator:
            yield first
            # The rest once the node has accepted: its refusal then arrives as its status,
            # not lost to a write in flight (grpc/grpc#36066).
            await node_accepted.wait()
            async for chunk in requests:
                yield chunk

        call = getattr(stub, method)(forward())
        try:
            async for out in call:
                node_accepted.set()   # its first answer: the client may send its bytes
                yield out
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                await context.abort(grpc.StatusCode.UNAVAILABLE,
                                    f"cannot reach the node agent of {node.metadata.name} at {address}: "
                                    f"{exc.details()}")
            await context.abort(exc.code(), exc.details() or exc.code().name)
        finally:
            call.cancel()


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def images_guard(guard: Any):
    """Secure mode: who may put images into the cluster — `create` on `nodes/images`."""
    from controlplane.auth import Attributes, Unauthenticated

    async def check(method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        origin = (("skiff-origin", "apiserver"),)
        try:
            identity = guard.authenticator.grpc(context)
        except Unauthenticated as exc:
            context.set_trailing_metadata(origin)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"Unauthorized: {exc}")
        # A build runs the Dockerfile's RUN steps on the node: a right of its own (cluster-admin has it).
        subresource = "build" if method == "Build" else "images"
        message = await guard.check(identity, Attributes(verb="create", resource="nodes", subresource=subresource,
                                                         name=getattr(request, "node_name", "")))
        if message is not None:
            context.set_trailing_metadata(origin)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)
    return check
