"""The agent's `Images` service (images.proto, decision 33): an image archive streamed in by
the control plane (`skiff image load|push` from any client) is loaded into this node's store;
the other nodes fetch it from here (agent/images/distribution.py, peerfetch.py). A build
context (`skiff build --cluster`) is built into it, by `skiff build` run as a process of its
own (its output streamed back a line at a time; a crash or a hang of a build is not the
agent's; a client gone interrupts it, and it removes its containers as it ends).

`skiff image push` names the image's layers first; the node answers which it has, and the
archive comes without their blobs (docker push's "Layer already exists"): those are read from
the store, verified as the archive's would be.

The archive is spooled to the store's tmp dir (same filesystem, removed afterwards, also
when the stream breaks), then agent.images.archive.load_archive verifies and loads it: a
bad archive leaves nothing in the store.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import AsyncIterator

import grpc

from agent.images.errors import ImageError
from agent.images.store import ImageStore
from proto.skiff.v1 import images_pb2, images_pb2_grpc


MAX_LAYERS = 1000   # layers of an image a load asks about (docker's limit is 127 an image)


class ImagesService(images_pb2_grpc.ImagesServicer):
    def __init__(self, *, store: ImageStore, node_name: str) -> None:
        self.store, self.node_name = store, node_name

    def other_node(self, name: str) -> str | None:
        """The refusal of a stream the control plane meant for another node; None if it is ours."""
        return f"this agent is node {self.node_name}, not {name[:100]!r}" if name and name != self.node_name else None

    def layers_present(self, layers) -> frozenset[str]:
        """Of the layer digests a client named, those whose blob this store has (a name that
        is no sha256 digest is no layer here; at most MAX_LAYERS are looked at)."""
        present = set()
        for digest in list(layers)[:MAX_LAYERS]:
            try:
                if self.store.has_blob(digest):
                    present.add(digest)
            except ImageError:
                continue
        return frozenset(present)

    async def Load(self, request_iterator, context) -> AsyncIterator[images_pb2.ImageLoadProgress]:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "image load: no archive was sent")
            return
        if (other := self.other_node(first.node_name)) is not None:
            await context.abort(grpc.StatusCode.NOT_FOUND, other)
            return
        present = self.layers_present(first.layers)
        # Accepted: the archive may come, without the blobs of the layers named here.
        yield images_pb2.ImageLoadProgress(node_name=self.node_name, layers_present=sorted(present))
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
            from agent.images.archive import load_archive
            try:
                loaded = await asyncio.to_thread(load_archive, store=self.store, path=Path(path), present=present)
            except ImageError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"node {self.node_name}: {exc}")
                return
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        yield images_pb2.ImageLoadProgress(
            node_name=self.node_name, bytes_received=received,
            images=[images_pb2.LoadedImage(reference=ref or "", image_id=image_id) for ref, image_id in loaded])

    async def Build(self, request_iterator, context) -> AsyncIterator[images_pb2.ImageBuildProgress]:
        async for out in _build(self, request_iterator, context):
            yield out


# The build's process: `skiff build` of this source tree, on the node's store.
_ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 30.0   # after SIGINT (the build removes its RUN container), before SIGKILL


def extract_context(tar_path: Path, into: Path) -> None:
    """The client's context tar into `into`, as tarfile's "data" filter allows: nothing
    outside it (no absolute path, no `..`, no link that leads out), no device or fifo, no
    setuid bit; files owned by the builder (COPY makes them root's unless --chown)."""
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")


def build_argv(options: images_pb2.ImageBuildOptions, *, context: Path, dockerfile: Path, store: Path,
               iidfile: Path) -> list[str]:
    argv = [sys.executable, "-m", "skiff.cli.main", "build", str(context), "-f", str(dockerfile),
            "--images-dir", str(store), "--iidfile", str(iidfile), "--network", options.network or "default"]
    for tag in options.tags:
        argv += ["-t", tag]
    for key, value in sorted(options.build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    if options.target:
        argv += ["--target", options.target]
    if options.no_cache:
        argv.append("--no-cache")
    return argv


async def _build(service: ImagesService, request_iterator, context) -> AsyncIterator[images_pb2.ImageBuildProgress]:
    requests = aiter(request_iterator)
    first = await anext(requests, None)
    if first is None or not first.HasField("options"):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "image build: the first message must carry the options")
        return
    if (other := service.other_node(first.node_name)) is not None:
        await context.abort(grpc.StatusCode.NOT_FOUND, other)
        return
    options = first.options
    if options.network not in ("", "default", "none"):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"image build: network {options.network[:100]!r}: must be default or none")
        return
    if not options.dockerfile.strip():
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "image build: the Dockerfile is empty")
        return
    yield images_pb2.ImageBuildProgress(node_name=service.node_name)   # accepted: the context may come
    # Refusals wait for the clean-up: gRPC sends the status at abort(), and what the client
    # sees after it must be a node with nothing of the build left.
    failure: tuple[grpc.StatusCode, str] | None = None
    work = Path(tempfile.mkdtemp(dir=service.store.tmp, prefix="build-"))
    proc: asyncio.subprocess.Process | None = None
    try:
        tar_path = work / "context.tar"
        with open(tar_path, "wb") as out:
            out.write(first.context)
            async for chunk in requests:
                out.write(chunk.context)
        (work / "context").mkdir()
        try:
            await asyncio.to_thread(extract_context, tar_path, work / "context")
        except (tarfile.TarError, OSError) as exc:   # tarfile.FilterError is a TarError
            failure = grpc.StatusCode.INVALID_ARGUMENT, f"node {service.node_name}: the build context: {exc}"
        if failure is None:
            tar_path.unlink()
            (work / "Dockerfile").write_text(options.dockerfile)
            argv = build_argv(options, context=work / "context", dockerfile=work / "Dockerfile",
                              store=service.store.root, iidfile=work / "iid")
            env = dict(os.environ, SKIFF_PROGRESS_INTERVAL="3", PYTHONPATH=os.pathsep.join(
                filter(None, (str(_ROOT), os.environ.get("PYTHONPATH")))))
            proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.STDOUT, cwd=work, env=env,
                                                        start_new_session=True)
            last_error = ""
            assert proc.stdout is not None
            async for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                if line.startswith("error: "):
                    last_error = line.removeprefix("error: ")
                yield images_pb2.ImageBuildProgress(line=line)
            code = await proc.wait()
            if code != 0:
                failure = (grpc.StatusCode.FAILED_PRECONDITION,
                           f"node {service.node_name}: {last_error or f'the build exited with {code}'}")
            else:
                image_id = (work / "iid").read_text().strip()
    finally:
        if proc is not None and proc.returncode is None:   # the client went away: stop the build
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        await asyncio.to_thread(shutil.rmtree, work, True)
    if failure is not None:
        await context.abort(*failure)
        return
    yield images_pb2.ImageBuildProgress(node_name=service.node_name, image_id=image_id)
