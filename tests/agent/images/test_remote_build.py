"""`skiff build --cluster` on the node's side (agent/imageservice.py Build) over real gRPC on
loopback: the context tar a client sends is extracted as the "data" filter allows and built by
`skiff build` run as a process of its own into the node's store; its output comes back a line at
a time, then the image id. A hostile context (a path out of it, a link out, a device) is refused
and leaves nothing in the store; a failing build is an error naming the node.
The relay through the control plane and a real node: tests/e2e/test_peer_images.py."""
from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import grpc
import pytest

from agent.imageservice import ImagesService
from agent.images.store import ImageStore
from agent.server import AgentService, start_server
from proto.skiff.v1 import images_pb2, images_pb2_grpc
from skiff.cli.build import context_tar


def _tar(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _build(store: ImageStore, dockerfile: str, context: bytes, *, node: str = "", tags=("web:v1",),
           chunk: int = 7) -> tuple[list[images_pb2.ImageBuildProgress], grpc.aio.AioRpcError | None]:
    async def go():
        service = AgentService(workers=None, runtime=None, node_name="node-1")
        server, port = await start_server(service=service, host="127.0.0.1", port=0,
                                          images=ImagesService(store=store, node_name="node-1"))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = images_pb2_grpc.ImagesStub(channel)
                accepted = asyncio.Event()

                async def chunks():
                    yield images_pb2.ImageBuildChunk(node_name=node, options=images_pb2.ImageBuildOptions(
                        tags=list(tags), dockerfile=dockerfile))
                    await accepted.wait()
                    for i in range(0, len(context), chunk):   # split anywhere: the tar is reassembled
                        yield images_pb2.ImageBuildChunk(context=context[i:i + chunk])
                out: list[images_pb2.ImageBuildProgress] = []
                try:
                    async for answer in stub.Build(chunks()):
                        accepted.set()
                        out.append(answer)
                except grpc.aio.AioRpcError as exc:
                    return out, exc
                return out, None
        finally:
            await server.stop(None)
    return asyncio.run(go())


def test_a_context_sent_in_pieces_is_built_into_the_nodes_store(tmp_path):
    store = ImageStore(root=tmp_path / "images")
    ctx = tmp_path / "ctx"
    (ctx / "site").mkdir(parents=True)
    (ctx / "site" / "index.html").write_text("hello\n")
    (ctx / "secret.key").write_text("not for the node\n")
    (ctx / ".dockerignore").write_text("*.key\n")
    spool = io.BytesIO()
    context_tar(ctx, spool)
    with tarfile.open(fileobj=io.BytesIO(spool.getvalue())) as sent:
        assert sorted(sent.getnames()) == [".dockerignore", "site", "site/index.html"]

    out, error = _build(store, "FROM scratch\nCOPY site /srv\n", spool.getvalue())
    assert error is None, error
    assert out[0] == images_pb2.ImageBuildProgress(node_name="node-1")   # accepted
    lines = [o.line for o in out[1:-1]]
    assert any("COPY site /srv" in line for line in lines), lines
    assert any(line.startswith("Successfully tagged web:v1") for line in lines), lines
    assert out[-1].node_name == "node-1" and out[-1].image_id.startswith("sha256:")
    assert [(r.repository, r.tag, r.image_id) for r in store.list()] == [
        ("web", "v1", out[-1].image_id)]
    assert not list(store.tmp.iterdir())   # the context and its work dir are gone


@pytest.mark.parametrize("hostile, why", [
    ([("../escape.txt", b"x")], "outside the destination"),
    ([tarfile.TarInfo("link")], None),   # replaced below: a symlink out of the context
    ([tarfile.TarInfo("dev")], None),    # replaced below: a character device
])
def test_a_hostile_context_is_refused_and_leaves_nothing(tmp_path, hostile, why):
    if isinstance(hostile[0], tarfile.TarInfo) and hostile[0].name == "link":
        hostile[0].type, hostile[0].linkname, why = tarfile.SYMTYPE, "/etc/shadow", "link to an absolute path"
    elif isinstance(hostile[0], tarfile.TarInfo):
        hostile[0].type, hostile[0].devmajor, hostile[0].devminor, why = tarfile.CHRTYPE, 1, 3, "special file"
    store = ImageStore(root=tmp_path / "images")
    out, error = _build(store, "FROM scratch\nCOPY . /\n", _tar(hostile))
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("node node-1: the build context: ") and why in error.details(), \
        error.details()
    assert store.list() == [] and not list(store.tmp.iterdir())
    assert not (tmp_path / "escape.txt").exists()


def test_refusals_before_the_context_and_a_failing_build(tmp_path):
    store = ImageStore(root=tmp_path / "images")
    _, other = _build(store, "FROM scratch\n", b"", node="node-2")
    assert (other.code(), other.details()) == (grpc.StatusCode.NOT_FOUND, "this agent is node node-1, not 'node-2'")
    _, empty = _build(store, "  \n", b"")
    assert (empty.code(), empty.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "image build: the Dockerfile is empty")
    # The build itself fails (a file the context does not have): its error, naming the node.
    out, failed = _build(store, "FROM scratch\nCOPY missing.txt /\n", _tar([("present.txt", b"x")]))
    assert failed.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert failed.details().startswith("node node-1: ") and "missing.txt" in failed.details(), failed.details()
    assert store.list() == [] and not list(store.tmp.iterdir())


def test_an_absolute_path_lands_inside_the_context(tmp_path):
    """tarfile's data filter strips the leading `/`: the file is the context's, not the host's."""
    store = ImageStore(root=tmp_path / "images")
    target = tmp_path / "host-file"
    out, error = _build(store, "FROM scratch\nCOPY . /\n", _tar([(str(target), b"x")]))
    assert error is None, error
    assert not target.exists()
    assert out[-1].image_id.startswith("sha256:")
