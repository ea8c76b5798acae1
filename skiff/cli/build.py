"""`skiff build`: build an image from a Dockerfile into the node's local store.

Wiring only: argument parsing here, the work in agent.images.dockerfile (parse,
validate) and agent.images.builder (execute). Like `nerdctl build`, it works on
the local image store directly (DATA/images), as root, with no control plane.

`--cluster` (or `--node NODE`) builds on a node of the cluster instead, for a
client that is not one, as `docker build` does against a remote daemon: the
context (.dockerignore applied) goes as a tar through the API to one node's
agent, which builds it into its store and streams the output back; the other
nodes fetch the image from there (agent/imageservice.py, decision 33).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_DATA_DIR = Path("/var/lib/skiff")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("build", help="build an image from a Dockerfile",
                              description="Build an image from a Dockerfile into the local store.")
    p.add_argument("context", metavar="CONTEXT", help="the build context directory")
    p.add_argument("-t", "--tag", action="append", default=[], help="NAME[:TAG] (repeatable)")
    p.add_argument("-f", "--file", help="the Dockerfile (default CONTEXT/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V")
    p.add_argument("--target", help="build up to this stage")
    p.add_argument("--no-cache", action="store_true", help="do not reuse cached layers")
    p.add_argument("--network", choices=("none", "default"), default="default",
                   help="network for RUN steps")
    p.add_argument("--check", action="store_true", help="parse and validate only")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="output of --check")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.add_argument("--iidfile", metavar="FILE", help="write the image id to FILE")
    p.add_argument("--cluster", action="store_true",
                   help="build on a node of the cluster (the context is sent through the API), not here")
    p.add_argument("--node", default="", metavar="NODE",
                   help="with --cluster: the node to build on (default: the first Ready one)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--images-dir", type=Path, default=None, metavar="DIR",
                   help="the image store (default: DATA_DIR/images)")
    p.set_defaults(func=run_build)


def _dockerfile_path(args: argparse.Namespace) -> Path:
    if args.file:
        return Path(args.file)
    return Path(args.context) / "Dockerfile"


def _build_args(pairs: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        out[key] = value if sep else None   # bare KEY: taken from the environment, as docker does
    return out


def run_build(args: argparse.Namespace) -> int:
    from agent.images.dockerfile import DockerfileError, parse_file, validate

    path = _dockerfile_path(args)
    try:
        dockerfile = parse_file(path=path)
        validate(dockerfile=dockerfile, build_args=_build_args(args.build_arg), target=args.target)
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except DockerfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if args.format == "json":
            for ins in dockerfile.instructions:
                print(json.dumps(ins.as_json()))
        else:
            print(f"{path}: {len(dockerfile.instructions)} instructions, "
                  f"{len(dockerfile.stages)} stage(s): OK")
        return 0
    if args.cluster or args.node:
        return _build_in_cluster(args, path)
    from agent.images.builder import BuildError, BuildOptions, build
    from agent.images.store import ImageStore

    store = ImageStore(root=args.images_dir or args.data_dir / "images")
    options = BuildOptions(context=Path(args.context), dockerfile=path, tags=tuple(args.tag),
                           build_args=_build_args(args.build_arg), target=args.target,
                           no_cache=args.no_cache, network=args.network)
    try:
        image_id = build(store=store, options=options, out=sys.stdout if not args.quiet else None)
    except (BuildError, DockerfileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _done(args, image_id)


def _done(args: argparse.Namespace, image_id: str) -> int:
    if args.iidfile:
        Path(args.iidfile).write_text(image_id)
    if args.quiet:
        print(image_id)
    return 0


def context_tar(context: Path, out) -> int:
    """Write the build context as a tar to the file `out` (.dockerignore's paths left out,
    symlinks as links); returns how many bytes."""
    import os
    import tarfile

    from agent.images.buildcontext import IgnoreRules

    ignore = IgnoreRules.load(context=context)
    # An ignored directory is skipped whole, unless a `!` rule may re-include something in it.
    prune = not any(negate for negate, _ in ignore.rules)
    with tarfile.open(fileobj=out, mode="w") as tar:
        for top, dirs, files in os.walk(context):
            rel_top = os.path.relpath(top, context)
            for name in sorted(dirs) + sorted(files):
                rel = name if rel_top == "." else f"{rel_top}/{name}"
                if ignore.ignored(rel) and rel != ".dockerignore":
                    if prune and name in dirs:
                        dirs.remove(name)
                    continue
                tar.add(os.path.join(top, name), arcname=rel, recursive=False)
            dirs.sort()
    return out.tell()


def _build_in_cluster(args: argparse.Namespace, dockerfile: Path) -> int:
    import asyncio
    import os
    import tempfile

    import grpc

    from proto.skiff.v1 import images_pb2, images_pb2_grpc
    from skiff.cli._common import call_api
    from skiff.progress import human_bytes

    context = Path(args.context)
    if not context.is_dir():
        print(f"error: {context}: the build context must be a directory", file=sys.stderr)
        return 1
    # A bare KEY takes its value from this machine's environment (and is left out without one), as docker's.
    build_args = {k: v for k, v in ((k, os.environ.get(k) if v is None else v)
                                    for k, v in _build_args(args.build_arg).items()) if v is not None}
    options = images_pb2.ImageBuildOptions(tags=args.tag, dockerfile=dockerfile.read_text(),
                                           build_args=build_args, target=args.target or "",
                                           no_cache=args.no_cache, network=args.network)
    image_id = ""

    with tempfile.TemporaryFile(prefix="skiff-build-context-") as spool:
        size = context_tar(context, spool)

        async def go(client) -> int:
            nonlocal image_id
            client.stub   # opens the channel (and its credentials)
            stub = images_pb2_grpc.ImagesStub(client._channel)
            accepted = asyncio.Event()

            async def chunks():
                yield images_pb2.ImageBuildChunk(node_name=args.node, options=options)   # alone: a refusal first
                await accepted.wait()
                spool.seek(0)
                while data := await asyncio.to_thread(spool.read, 1 << 20):
                    yield images_pb2.ImageBuildChunk(context=data)
            try:
                async for answer in stub.Build(chunks()):
                    if not accepted.is_set():
                        accepted.set()
                        if not args.quiet:
                            print(f"Sending build context to node {answer.node_name}: {human_bytes(size)}",
                                  flush=True)
                    elif answer.image_id:
                        image_id = answer.image_id
                    elif not args.quiet:
                        print(answer.line, flush=True)
            except grpc.aio.AioRpcError as exc:
                raise client._error(exc) from None
            return 0
        call_api(args, go)
    return _done(args, image_id)
