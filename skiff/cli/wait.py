"""`skiff wait pod NAME --for=condition=Ready|--for=delete|--for=jsonpath=...`:
block until an object reaches a state, as `kubectl wait` does.

The object is read once and then watched from that list's revision, so a
change between reading and watching is not missed.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Callable

import grpc
from google.protobuf.message import Message

from skiff.api import jsonpath, printers
from skiff.cli._common import CliError, add_namespace_flags, call_api, kind_arg, namespace_of, parse_duration, scope
from skiff.client import ApiClient, ApiError, Gone, Unavailable, Unreachable


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "wait", help="wait until an object reaches a condition",
        description="Wait until a pod or node has a condition (--for=condition=Ready, "
                    "--for=condition=Ready=False), is deleted (--for=delete), or a field has a value "
                    "(--for=jsonpath='{.status.phase}'=Succeeded).")
    p.add_argument("resource", metavar="TYPE[/NAME]", help="pod, node, job, ... or TYPE/NAME (job/pi)")
    p.add_argument("name", metavar="NAME", nargs="?")
    p.add_argument("--for", dest="condition", required=True, metavar="CONDITION",
                   help="condition=TYPE[=STATUS], delete, or jsonpath={.path}[=VALUE] (kubectl's JSONPath, filters included; without =VALUE: until the field is set)")
    p.add_argument("--timeout", type=parse_duration, default=30.0, metavar="DURATION",
                   help="give up after this long (default 30s)")
    add_namespace_flags(p)
    p.set_defaults(func=run)


def predicate(spec: str) -> Callable[[Message | None], bool]:
    """A test on the object (None once it is deleted) for a --for value."""
    if spec == "delete":
        return lambda obj: obj is None
    if spec.startswith("condition="):
        ctype, _, status = spec[len("condition="):].partition("=")
        status = status or "True"

        def has_condition(obj: Message | None) -> bool:
            return obj is not None and any(c.type.lower() == ctype.lower() and c.status.lower() == status.lower()
                                           for c in obj.status.conditions)
        return has_condition
    if spec.startswith("jsonpath="):
        expr = spec[len("jsonpath="):]
        if expr.startswith("{"):
            end = expr.rfind("}")
            path, rest = expr[1:end], expr[end + 1:]
            sep, want = rest[:1], rest[1:]
        else:
            path, sep, want = expr.partition("=")
        if not path.strip().strip(".") or (sep and sep != "="):
            raise CliError(f"--for {spec}: expected jsonpath={{.status.phase}}=VALUE")
        try:
            template = jsonpath.parse("{" + path.strip() + "}")
        except jsonpath.JsonPathError as exc:
            raise CliError(f"--for {spec}: {exc}") from None

        def matches(obj: Message | None) -> bool:
            if obj is None:
                return False
            try:
                got = template.render(printers.to_dict(obj))
            except jsonpath.JsonPathError:
                return False
            # Without =VALUE, as kubectl: the field is there and not empty.
            return got == want if sep else got not in ("", "[]", "{}")
        return matches
    raise CliError(f"--for {spec}: expected condition=TYPE[=STATUS], delete, or jsonpath={{.path}}[=VALUE]")


def run(args: argparse.Namespace) -> int:
    if "/" in args.resource and args.name is None:
        args.resource, _, args.name = args.resource.partition("/")
    if not args.name:
        raise CliError("expected TYPE NAME or TYPE/NAME, e.g. job/pi")
    kind = kind_arg(args.resource)
    test = predicate(args.condition)
    namespace = scope(kind, namespace_of(args))
    label = f"{kind.resource}/{args.name}"

    async def wait_for(client: ApiClient) -> None:
        while True:  # each pass: list, then watch from the list's revision
            objs, revision = await client.list(kind.name, namespace)
            current = next((o for o in objs if o.metadata.name == args.name), None)
            if current is None and args.condition != "delete":
                raise CliError(f'{kind.resource} "{args.name}" not found')
            if test(current):
                return
            try:
                # Closed before the channel is: a watch left open would be cut
                # by the client's close ("Cancelling all calls").
                async with contextlib.aclosing(client.watch(kind.name, namespace,
                                                            resource_version=revision)) as events:
                    async for event_type, obj, _rv in events:
                        if obj is None or obj.metadata.name != args.name:
                            continue
                        if test(None if event_type == "DELETED" else obj):
                            return
                        if event_type == "DELETED":
                            raise CliError(f"{label} was deleted while waiting for {args.condition}")
            except (Gone, Unavailable, ApiError) as exc:
                # The server ended the watch (compacted, stalled, restarting): list again,
                # as kubectl's watch tools do; an unreachable server is not retried.
                if isinstance(exc, Unreachable):
                    raise
                if not isinstance(exc, (Gone, Unavailable)) and exc.code != grpc.StatusCode.CANCELLED:
                    raise
            await asyncio.sleep(0.2)

    async def main(client: ApiClient) -> int:
        try:
            await asyncio.wait_for(wait_for(client), timeout=args.timeout)
        except asyncio.TimeoutError:
            raise CliError(f"timed out waiting for the condition on {label}") from None
        print(f"{label} condition met")
        return 0

    return call_api(args, main)
