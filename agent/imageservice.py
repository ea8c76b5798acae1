"""The agent's `Images` service (images.proto, decision 33): an image archive streamed in by
the control plane (`skiff image load|push` from any client) is loaded into this node's store;
the other nodes fetch it from here (agent/images/distribution.py, peerfetch.py).

The archive is spooled to the store's tmp dir (same filesystem, removed afterwards, also
when the stream breaks), then agent.images.archive.load_archive verifies and loads it: a
bad archive leaves nothing in the store.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from typing import AsyncIterator

import grpc

from agent.images.errors import ImageError
from agent.images.store import ImageStore
from proto.skiff.v1 import images_pb2, images_pb2_grpc


class ImagesService(images_pb2_grpc.ImagesServicer):
    def __init__(self, *, store: ImageStore, node_name: str) -> None:
        self.store, self.node_name = store, node_name

    async def Load(self, request_iterator, context) -> AsyncIterator[images_pb2.ImageLoadProgress]:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "image load: no archive was sent")
            return
        if first.node_name and first.node_name != self.node_name:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"this agent is node {self.node_name}, "
                                                           f"not {first.node_name[:100]!r}")
            return
        fd, path = tempfile.mkstemp(dir=self.store.tmp, prefix="load-", suffix=".tar")
        received = 0
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(first.data)
                received += len(first.data)
                async for chunk in request_iterator:
                    out.write(chunk.data)
                    received += len(chunk.data)
            if received == 0:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "image load: the archive is empty")
                return
            from pathlib import Path

            from agent.images.archive import load_archive
            try:
                loaded = await asyncio.to_thread(load_archive, store=self.store, path=Path(path))
            except ImageError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"node {self.node_name}: {exc}")
                return
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        yield images_pb2.ImageLoadProgress(
            node_name=self.node_name, bytes_received=received,
            images=[images_pb2.LoadedImage(reference=ref or "", image_id=image_id) for ref, image_id in loaded])
