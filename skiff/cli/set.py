"""`skiff set image deployment/NAME CONTAINER=IMAGE ...`, as kubectl.

    skiff set image deploy/web web=busybox:1.36        deployment/web image updated
    skiff set image rs/frontend '*=busybox:1.36'       every container

Works on deployments, replica sets and pods (a pod's images are the one
thing its spec lets change).
"""
from __future__ import annotations

import argparse
import sys

from google.protobuf.message import Message

from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of
from skiff.cli._objects import change, intermixed, not_found, object_label, parse_resources
from skiff.client import ApiClient, NotFound


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("set", help="set specific features on objects",
                              description="Set specific features on objects.")
    what = p.add_subparsers(dest="what", metavar="FEATURE", required=True)
    image = intermixed(what.add_parser(
        "image", help="update the image of containers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Update the image of containers of a deployment, replica set or pod.",
        epilog="examples:\n  skiff set image deployment/web web=busybox:1.36\n"
               "  skiff set image deployment/web '*=busybox:1.36'"))
    image.add_argument("words", metavar="TYPE/NAME ... CONTAINER=IMAGE ...", nargs="+")
    add_namespace_flags(image)
    image.set_defaults(func=run_image)


def _template_spec(obj: Message) -> Message:
    return obj.spec if type(obj).__name__ == "Pod" else obj.spec.template.spec


def run_image(args: argparse.Namespace) -> int:
    at = next((i for i, w in enumerate(args.words) if "=" in w), len(args.words))
    objects, pairs = args.words[:at], args.words[at:]
    if not pairs:
        raise CliError("at least one image update is required")
    images: dict[str, str] = {}
    for pair in pairs:
        container, _, image = pair.partition("=")
        if not container or not image:
            raise CliError(f"invalid image update {pair!r}: expected CONTAINER=IMAGE")
        images[container] = image
    targets = [(r.kind, name) for r in parse_resources(objects) for name in r.names]
    if not targets:
        raise CliError("one or more resources must be specified as <resource> <name> or <resource>/<name>")
    for kind, _ in targets:
        if kind.name not in ("Deployment", "ReplicaSet", "Pod"):
            raise CliError(f"cannot set images of {kind.resource}")
    namespace = namespace_of(args)

    async def body(client: ApiClient) -> int:
        code = 0
        for kind, name in targets:
            def set_images(live: Message) -> Message:
                spec = _template_spec(live)
                names = {c.name for c in [*spec.init_containers, *spec.containers]}
                for container in images:
                    if container != "*" and container not in names:
                        raise CliError(f'unable to find container named "{container}"')
                for c in [*spec.init_containers, *spec.containers]:
                    if c.name in images or "*" in images:
                        c.image = images.get(c.name, images.get("*", c.image))
                return live
            try:
                obj, changed = await change(client, kind, namespace, name, set_images)
            except NotFound:
                print(not_found(kind, name), file=sys.stderr)
                code = 1
                continue
            print(f"{object_label(obj)} image updated" if changed else object_label(obj))
        return code
    return call_api(args, body)
