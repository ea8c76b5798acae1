"""`skiff image ...`: manage the node's local image store.

`skiff image load --cluster` and `skiff image push NAME` (NAME with no registry host,
or --cluster) put an image into the cluster instead, through the API: the archive
streams to the control plane, which passes it on to one node's agent; the other nodes
fetch it from that node (decision 33).

Wiring only: each sub-command maps to one function over agent.images. Like
`nerdctl image` / `k3s ctr images`, it works on the local store (DATA/images)
directly, as root, with no control plane. Long work (bootstrap, pull, push,
load, save, import) shows progress through skiff.progress: a live line on a
terminal, a line every $SKIFF_PROGRESS_INTERVAL seconds (3) on a pipe,
nothing with --quiet.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

DEFAULT_DATA_DIR = Path("/var/lib/skiff")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("image", aliases=["images"], help="manage local images",
                              description="Manage the images in this node's local store.")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    sub = p.add_subparsers(dest="image_command", metavar="COMMAND")
    p.set_defaults(func=_cmd_ls, all=False, quiet=False, format="table")

    def add(name: str, func, help: str, aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, aliases=list(aliases))
        # Accepted after the sub-command too ("skiff image ls --data-dir D").
        sp.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
        sp.set_defaults(func=func)
        return sp

    sp = add("ls", _cmd_ls, "list images", aliases=("list",))
    sp.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    sp.add_argument("--format", choices=("table", "json"), default="table")
    sp = add("inspect", _cmd_inspect, "show an image's manifest and config as JSON")
    sp.add_argument("refs", nargs="+", metavar="REF")
    sp = add("rm", _cmd_rm, "remove image references", aliases=("rmi",))
    sp.add_argument("refs", nargs="+", metavar="REF")
    sp = add("tag", _cmd_tag, "add a reference to an image")
    sp.add_argument("src", metavar="SOURCE")
    sp.add_argument("dst", metavar="TARGET")
    sp = add("prune", _cmd_prune, "remove unreferenced blobs and layers")
    sp = add("import", _cmd_import, "make a one-layer image from a root filesystem tarball")
    sp.add_argument("tarball", metavar="ROOTFS.tar")
    sp.add_argument("ref", metavar="NAME[:TAG]")
    sp.add_argument("-c", "--change", action="append", default=[],
                    help="Dockerfile instruction applied to the config (CMD, ENV, ...)")
    sp = add("load", _cmd_load, "load a docker-save or OCI archive")
    sp.add_argument("-i", "--input", required=True, metavar="FILE")
    sp.add_argument("--cluster", action="store_true",
                    help="into the cluster (through the API, to one node's store; the other nodes fetch it "
                         "from there) instead of this machine's store")
    sp.add_argument("--node", default="", metavar="NODE",
                    help="with --cluster: the node to load into (default: the first Ready one)")
    sp = add("save", _cmd_save, "write images to an OCI/docker-compatible archive")
    sp.add_argument("-o", "--output", required=True, metavar="FILE")
    sp.add_argument("refs", nargs="+", metavar="REF")
    for name in ("import", "load", "save"):
        sub.choices[name].add_argument("-q", "--quiet", action="store_true", help="no progress")
    for name, func, help in (("pull", _cmd_pull, "pull an image from a registry"),
                             ("push", _cmd_push, "push an image to the registry its name names")):
        sp = add(name, func, help)
        sp.add_argument("ref", metavar="REF")
        sp.add_argument("--creds", metavar="USER:PASSWORD",
                        help="registry credentials (default: ~/.docker/config.json auths)")
        sp.add_argument("--insecure", action="store_true", default=None,
                        help="plain http (default for localhost and 127.0.0.1)")
        sp.add_argument("-q", "--quiet", action="store_true")
    sub.choices["push"].add_argument(
        "--cluster", action="store_true",
        help="into the cluster (through the API) even if REF names a registry host; a REF without one "
             "(my-web-server:v1) always goes there")
    sub.choices["push"].add_argument("--node", default="", metavar="NODE",
                                     help="into the cluster: the node to put it on (default: the first Ready one)")
    sp = add("bootstrap", _cmd_bootstrap, "make an offline base image (busybox, debian)")
    sp.add_argument("base", choices=("busybox", "debian"))
    sp.add_argument("--include", action="append", default=[],
                    help="extra package for debian (python3 -> python3-minimal)")
    sp.add_argument("--suite", default="bookworm")
    sp.add_argument("-t", "--tag", help="reference to tag (default busybox:latest / debian[-python]:SUITE)")
    sp.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress; print only the reference")


def _store(args: argparse.Namespace):
    from agent.images.store import ImageStore
    return ImageStore(root=Path(args.data_dir) / "images")


def _human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return f"{n}"


def _ago(ts: float) -> str:
    delta = max(0, time.time() - ts)
    for size, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400 * 7, "week"),
                       (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if delta >= size:
            n = int(delta // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "Less than a second ago"


def _progress(args: argparse.Namespace, stream):
    """How long work shows it is alive (skiff.progress): a live line on a
    terminal, plain lines a few seconds apart on a pipe; None with --quiet."""
    if args.quiet:
        return None
    from skiff.progress import ProgressLine
    try:
        interval = float(os.environ.get("SKIFF_PROGRESS_INTERVAL", "3"))
    except ValueError:
        interval = 3.0
    return ProgressLine(stream, interval=interval)


def _run(func) -> int:
    from agent.images.errors import ImageError
    try:
        return func()
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _cmd_ls(args: argparse.Namespace) -> int:
    def go() -> int:
        rows = _store(args).list()
        if args.format == "json":
            for r in rows:
                print(json.dumps({"Repository": r.repository, "Tag": r.tag, "ID": r.image_id,
                                  "Digest": r.manifest_digest, "Created": r.created,
                                  "Size": r.size}))
            return 0
        if args.quiet:
            seen: list[str] = []
            for r in rows:
                short = r.image_id.removeprefix("sha256:")[:12]
                if short not in seen:
                    seen.append(short)
                    print(short)
            return 0
        table = [("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")]
        for r in rows:
            table.append((r.repository, r.tag, r.image_id.removeprefix("sha256:")[:12],
                          _ago(r.created_ts) if r.created_ts else "N/A", _human_size(r.size)))
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        for row in table:
            print("   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        return 0
    return _run(go)


def _cmd_inspect(args: argparse.Namespace) -> int:
    def go() -> int:
        store = _store(args)
        print(json.dumps([store.inspect(r) for r in args.refs], indent=2))
        return 0
    return _run(go)


def _cmd_rm(args: argparse.Namespace) -> int:
    def go() -> int:
        store = _store(args)
        for ref in args.refs:
            for line in store.remove(ref):
                print(line)
        return 0
    return _run(go)


def _cmd_tag(args: argparse.Namespace) -> int:
    return _run(lambda: (_store(args).tag(args.src, args.dst), 0)[1])


def _cmd_prune(args: argparse.Namespace) -> int:
    def go() -> int:
        result = _store(args).prune()
        print(f"Deleted {result.blobs} blob(s) and {result.layers} layer(s); "
              f"reclaimed {_human_size(result.bytes)}")
        return 0
    return _run(go)


def _cmd_import(args: argparse.Namespace) -> int:
    def go() -> int:
        from agent.images.archive import import_rootfs
        progress = _progress(args, sys.stderr)
        try:
            image_id = import_rootfs(store=_store(args), tarball=Path(args.tarball), ref=args.ref,
                                     changes=tuple(args.change), progress=progress)
        finally:
            if progress is not None:
                progress.finish()
        print(image_id)
        return 0
    return _run(go)


def _has_registry_host(ref: str) -> bool:
    """`localhost:5000/app`, `ghcr.io/x/y` name a registry; `my-web-server:v1`, `me/app` do not."""
    first, sep, _ = ref.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


LOAD_CHUNK = 1 << 20


def _into_cluster(args: argparse.Namespace, archive: Path | Callable[[frozenset[str]], Path],
                  layers: Sequence[str] = ()) -> list[tuple[str, str, str]]:
    """Stream an archive to the cluster's Images service (decision 33): (familiar ref or "",
    image id, node) of each image loaded. `archive` is the archive's path, or makes it once
    the node has accepted, leaving out the blobs of those of `layers` the node has."""
    import asyncio
    import contextlib

    import grpc

    from proto.skiff.v1 import images_pb2, images_pb2_grpc
    from skiff.cli._common import call_api

    out: list[tuple[str, str, str]] = []

    async def go(client) -> int:
        client.stub   # opens the channel (and its credentials)
        stub = images_pb2_grpc.ImagesStub(client._channel)
        ready: asyncio.Future[BinaryIO] = asyncio.get_running_loop().create_future()

        async def chunks():
            # Alone: a refusal comes before the archive.
            yield images_pb2.ImageLoadChunk(node_name=args.node, layers=layers)
            f = await ready
            while data := await asyncio.to_thread(f.read, LOAD_CHUNK):
                yield images_pb2.ImageLoadChunk(data=data)

        call = stub.Load(chunks())
        with contextlib.ExitStack() as files:
            try:
                async for answer in call:
                    if not ready.done():   # the node accepted: the archive, without the layers it has
                        present = frozenset(answer.layers_present).intersection(layers)
                        path = archive if isinstance(archive, Path) else await asyncio.to_thread(archive, present)
                        ready.set_result(files.enter_context(open(path, "rb")))
                        continue
                    out.extend((i.reference, i.image_id, answer.node_name) for i in answer.images)
            except grpc.aio.AioRpcError as exc:
                raise client._error(exc) from None
            finally:
                call.cancel()   # an archive that could not be made or opened ends the stream
        return 0
    call_api(args, go)
    return out


def _cmd_load(args: argparse.Namespace) -> int:
    if args.cluster or args.node:
        def remote() -> int:
            if not Path(args.input).is_file():
                print(f"error: {args.input}: not a readable tar archive: no such file", file=sys.stderr)
                return 1
            for ref, image_id, node in _into_cluster(args, Path(args.input)):
                print(f"Loaded image: {ref} (node {node})" if ref else f"Loaded image ID: {image_id} (node {node})")
            return 0
        return _run(remote)

    def go() -> int:
        from agent.images.archive import load_archive
        progress = _progress(args, sys.stderr)
        try:
            loaded = load_archive(store=_store(args), path=Path(args.input), progress=progress)
        finally:
            if progress is not None:
                progress.finish()
        for ref, image_id in loaded:
            print(f"Loaded image: {ref}" if ref else f"Loaded image ID: {image_id}")
        return 0
    return _run(go)


def _cmd_save(args: argparse.Namespace) -> int:
    def go() -> int:
        from agent.images.archive import save_archive
        progress = _progress(args, sys.stderr)
        try:
            save_archive(store=_store(args), refs=tuple(args.refs), path=Path(args.output), progress=progress)
        finally:
            if progress is not None:
                progress.finish()
        return 0
    return _run(go)


def _cmd_bootstrap(args: argparse.Namespace) -> int:
    def go() -> int:
        from agent.images import bootstrap
        store = _store(args)
        log = None if args.quiet else sys.stderr
        if args.base == "busybox":
            ref = bootstrap.bootstrap_busybox(store=store, ref=args.tag or "busybox:latest",
                                              force=args.force, log=log)
        else:
            progress = _progress(args, sys.stderr)
            try:
                ref = bootstrap.bootstrap_debian(store=store, suite=args.suite,
                                                 include=tuple(args.include), ref=args.tag,
                                                 force=args.force, log=progress, progress=progress)
            finally:
                if progress is not None:
                    progress.finish()
        print(ref)
        return 0
    return _run(go)


def _creds(args: argparse.Namespace):
    from agent.images.registry import Credentials
    if not args.creds:
        return None
    user, sep, password = args.creds.partition(":")
    if not sep:
        raise SystemExit("error: --creds takes USER:PASSWORD")
    return Credentials(username=user, password=password)


def _cmd_pull(args: argparse.Namespace) -> int:
    def go() -> int:
        from agent.images.registry import pull
        progress = _progress(args, sys.stdout)
        try:
            image_id = pull(store=_store(args), ref=args.ref, credentials=_creds(args),
                            insecure=args.insecure, progress=progress, meter=progress)
        finally:
            if progress is not None:
                progress.finish()
        if args.quiet:
            print(image_id)
        return 0
    return _run(go)


def _cmd_push(args: argparse.Namespace) -> int:
    if args.cluster or args.node or not _has_registry_host(args.ref):
        def remote() -> int:
            import tempfile

            from agent.images.archive import save_archive
            store = _store(args)
            _, manifest, _ = store.manifest(args.ref)   # not here: the store's own "no such image" error
            layers = [layer["digest"] for layer in manifest["layers"]]
            with tempfile.TemporaryDirectory(prefix="skiff-push-") as tmp:
                path = Path(tmp) / "image.tar"

                def archive(present: frozenset[str]) -> Path:
                    if not args.quiet:   # docker push's words, for the layers the node has
                        for digest in (d for d in layers if d in present):
                            print(f"{digest.removeprefix('sha256:')[:12]}: Layer already exists", file=sys.stderr)
                    save_archive(store=store, refs=(args.ref,), path=path, leave_out=present)
                    return path
                loaded = _into_cluster(args, archive, layers)
            for ref, image_id, node in loaded:
                print(f"{ref or image_id}: pushed into the cluster, node {node} (image {image_id})")
            return 0
        return _run(remote)

    def go() -> int:
        from agent.images.registry import push
        progress = _progress(args, sys.stdout)
        try:
            digest = push(store=_store(args), ref=args.ref, credentials=_creds(args),
                          insecure=args.insecure, progress=progress, meter=progress)
        finally:
            if progress is not None:
                progress.finish()
        if args.quiet:
            print(digest)
        return 0
    return _run(go)
