"""`skiff run NAME --image IMG [-p HOST:CONTAINER]... [-- CMD ARGS...]`: create a
one-container Pod from the command line, as `kubectl run` does, with Docker's
`-p` publishing a container port on the node (containerPort + hostPort).

The pod is labelled `run=NAME` like kubectl's; words after `--` become the
container's args (the image's entrypoint still runs) unless --command makes
them the command, again as kubectl. The pod is checked with the same
validation as a manifest before it is sent.
"""
from __future__ import annotations

import argparse
import re
import sys

from proto.skiff.v1 import types_pb2
from skiff.api import kinds, printers
from skiff.api.quantity import QuantityError, parse_quantity
from skiff.cli._common import CliError, add_namespace_flags, call_api, namespace_of
from skiff.client import AlreadyExists, ApiClient

_PORT = re.compile(r"^(?:(?P<ip>\d+\.\d+\.\d+\.\d+):)?(?:(?P<host>\d+):)?(?P<container>\d+)(?:/(?P<proto>tcp|udp|TCP|UDP))?$")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="create a pod running one image",
        description="Create a Pod with one container, like `kubectl run`; -p publishes a port on "
                    "the node like `docker run -p`. Words after -- are the container's args "
                    "(its command with --command).",
        usage="skiff run [-h] NAME --image IMG [-p [IP:]HOST:CONTAINER[/udp]]... [--env K=V]... "
              "[--restart Never|OnFailure|Always] [--limits cpu=..,memory=..] [-- CMD ARG...]")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--image", required=True, metavar="IMG", help="the image, e.g. busybox")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="HOST:CONTAINER",
                   help="publish a container port on the node: [IP:]HOST:CONTAINER[/udp], or CONTAINER "
                        "to declare it only (repeatable)")
    p.add_argument("--port", type=int, metavar="PORT", help="declare a container port (not published)")
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="an environment variable")
    p.add_argument("-l", "--labels", default="", metavar="K=V,...", help="labels (default run=NAME)")
    p.add_argument("--restart", choices=("Always", "OnFailure", "Never"), default="Always",
                   help="the pod's restartPolicy (default Always)")
    p.add_argument("--limits", default="", metavar="cpu=..,memory=..", help="resource limits, e.g. cpu=500m,memory=128Mi")
    p.add_argument("--requests", default="", metavar="cpu=..,memory=..", help="resource requests")
    p.add_argument("--image-pull-policy", choices=("Always", "IfNotPresent", "Never"),
                   help="when the node pulls the image")
    p.add_argument("--command", dest="as_command", action="store_true",
                   help="the words after -- replace the image's entrypoint instead of its cmd")
    p.add_argument("--dry-run", action="store_true", help="print the pod as YAML; create nothing")
    add_namespace_flags(p)
    p.set_defaults(func=run, takes_command=True)


def _pairs(text: str, *, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{what}: expected KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def _port(text: str) -> types_pb2.ContainerPort:
    m = _PORT.match(text)
    if not m:
        raise CliError(f"-p {text}: expected [IP:]HOST:CONTAINER[/udp] (e.g. 8080:80) or CONTAINER")
    port = types_pb2.ContainerPort(container_port=int(m["container"]), protocol=(m["proto"] or "TCP").upper())
    if m["host"]:
        port.host_port = int(m["host"])
    if m["ip"]:
        port.host_ip = m["ip"]
    for value, name in ((port.container_port, "container port"), (port.host_port, "host port")):
        if not 0 <= value <= 65535 or (name == "container port" and value == 0):
            raise CliError(f"-p {text}: {name} {value} is not between 1 and 65535")
    return port


def build_pod(args: argparse.Namespace) -> types_pb2.Pod:
    """The Pod `skiff run` creates, from its arguments."""
    pod = types_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = args.name
    pod.metadata.namespace = namespace_of(args)
    pod.metadata.labels.update(_pairs(args.labels, what="--labels") or {"run": args.name})
    pod.spec.restart_policy = args.restart
    c = pod.spec.containers.add(name=args.name, image=args.image)
    if args.trailing:
        (c.command if args.as_command else c.args).extend(args.trailing)
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--env {item}: expected K=V")
        c.env.add(name=key, value=value)
    c.ports.extend(_port(text) for text in args.publish)
    if args.port:
        c.ports.add(container_port=args.port, protocol="TCP")
    for field, text in (("limits", args.limits), ("requests", args.requests)):
        values = _pairs(text, what=f"--{field}")
        for key, value in values.items():
            try:
                parse_quantity(value)
            except QuantityError as exc:
                raise CliError(f"--{field} {key}: {exc}") from None
        getattr(c.resources, field).update(values)
    if args.image_pull_policy:
        c.image_pull_policy = args.image_pull_policy
    return pod


def _validate(pod: types_pb2.Pod) -> None:
    errors = kinds.validate(pod)
    if errors:
        raise CliError("; ".join(f"{e.path}: {e.message}" for e in errors))


def run(args: argparse.Namespace) -> int:
    pod = build_pod(args)
    _validate(pod)
    if args.dry_run:
        sys.stdout.write(printers.dump_yaml(printers.to_dict(pod)))
        return 0

    async def create(client: ApiClient) -> int:
        try:
            await client.create(pod)
        except AlreadyExists:
            raise CliError(f"pod/{args.name} already exists in namespace {pod.metadata.namespace!r}") from None
        print(f"pod/{args.name} created")
        return 0

    return call_api(args, create)
