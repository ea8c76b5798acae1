"""What every `skiff` command shares: finding the control plane, running one
async conversation with it, namespaces, and the one-line error convention.

Commands raise `CliError` (or let the client's `ApiError` through); `main`
turns either into `error: ...` on stderr and exit code 1, never a traceback.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Awaitable, Callable

from skiff.api import kinds
from skiff.client import ApiClient, ApiError, Unreachable
from skiff.config import resolve_credentials, resolve_server
from skiff.cli.errors import CliError  # noqa: F401 - re-exported for the command modules

DEFAULT_NAMESPACE = "default"


def server_address(args: argparse.Namespace) -> str:
    return resolve_server(flag=getattr(args, "server", None))


def call_api(args: argparse.Namespace, fn: Callable[[ApiClient], Awaitable[int]]) -> int:
    """Open a client to the resolved server, run `fn(client)` to completion, close it."""
    address = server_address(args)
    credentials = resolve_credentials()

    async def conversation() -> int:
        async with ApiClient(address, on_warning=print_warning, credentials=credentials) as client:
            return await fn(client)

    return asyncio.run(conversation())


def print_warning(text: str, *, _seen: set[str] = set()) -> None:
    """A server warning, as kubectl prints one: `Warning: ...` on stderr, each text once per command."""
    if text not in _seen:
        _seen.add(text)
        print(f"Warning: {text}", file=sys.stderr, flush=True)


def describe_api_error(exc: ApiError) -> str:
    """One line for an API error; an unreachable server gets the hint to start one."""
    if isinstance(exc, Unreachable):
        where, _, reason = exc.message.rpartition(": ")
        message = f"{where} ({reason})" if where else exc.message
        return f"{message}; is the cluster up? (skiff up)"
    return exc.message


def add_namespace_flags(p: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    p.add_argument("-n", "--namespace", metavar="NS",
                   help=f"the namespace (default: {DEFAULT_NAMESPACE!r}, or the manifest's own)")
    if all_namespaces:
        p.add_argument("-A", "--all-namespaces", action="store_true",
                       help="list across all namespaces")


def namespace_of(args: argparse.Namespace) -> str:
    return getattr(args, "namespace", None) or DEFAULT_NAMESPACE


def kind_arg(word: str) -> kinds.Kind:
    """The Kind a user typed (pods, pod, po, nodes ...), or a CliError listing the choices."""
    try:
        return kinds.kind_for_resource(word)
    except kinds.UnknownKind:
        known = ", ".join(k.resource for k in kinds.KINDS)
        raise CliError(f"unknown resource type {word!r}; known: {known}") from None


def scope(kind: kinds.Kind, namespace: str) -> str:
    """The namespace to send for `kind`: cluster-scoped kinds have none."""
    return namespace if kind.namespaced else ""


def parse_duration(text: str) -> float:
    """Seconds from "30", "30s", "5m", "1h" (as kubectl's --timeout)."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}; use e.g. 30s, 5m, 1h") from None
