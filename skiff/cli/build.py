"""`skiff build`: build an image from a Dockerfile into the node's local store.

Wiring only: argument parsing here, the work in agent.images.dockerfile (parse,
validate) and agent.images.builder (execute). Like `nerdctl build`, it works on
the local image store directly (DATA/images), as root, with no control plane.
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
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
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
    from agent.images.builder import BuildError, BuildOptions, build
    from agent.images.store import ImageStore

    store = ImageStore(root=args.data_dir / "images")
    options = BuildOptions(context=Path(args.context), dockerfile=path, tags=tuple(args.tag),
                           build_args=_build_args(args.build_arg), target=args.target,
                           no_cache=args.no_cache, network=args.network)
    try:
        image_id = build(store=store, options=options, out=sys.stdout if not args.quiet else None)
    except (BuildError, DockerfileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.quiet:
        print(image_id)
    return 0
