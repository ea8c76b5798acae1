"""`skiff port-forward POD|TYPE/NAME [LOCAL:]REMOTE...`: listen on loopback
and carry each accepted connection to REMOTE inside the pod's network
namespace, one PortForward stream per connection (control plane → the pod's
agent).

As kubectl, TYPE/NAME may be a Service, Deployment, ReplicaSet, DaemonSet,
Job or pod: one pod of its selector is chosen (running and ready first, then
running, then the oldest), once, at start; a Service's REMOTE is a service port,
carried to its targetPort (a number, or a container port's name in that pod).

Prints kubectl's `Forwarding from 127.0.0.1:LOCAL -> REMOTE` per port (a
LOCAL of 0 or `:REMOTE` picks a free port) and runs until interrupted.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
from typing import AsyncIterator

from google.protobuf.message import Message

from skiff.api import labelselector
from skiff.cli._common import CliError, add_namespace_flags, call_api, kind_arg, namespace_of
from skiff.client import ApiClient, ApiError

log = logging.getLogger(__name__)
READ_CHUNK = 32 * 1024


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "port-forward", help="forward local ports to a pod",
        description="Listen on local ports and forward each connection to a port inside POD's network "
                    "namespace. Runs until interrupted.")
    p.add_argument("pod", metavar="POD|TYPE/NAME",
                   help="POD, pod/POD, or svc|deploy|rs|ds|job/NAME (one of its pods)")
    p.add_argument("ports", metavar="[LOCAL:]REMOTE", nargs="+")
    p.add_argument("--address", default="127.0.0.1", help="the local address to listen on (default 127.0.0.1)")
    add_namespace_flags(p)
    p.set_defaults(func=run)


def parse_ports(specs: list[str]) -> list[tuple[int, int]]:
    """[(local, remote)] from `8080`, `9000:80`, `:80` (local 0: any free port)."""
    pairs = []
    for spec in specs:
        local, sep, remote = spec.partition(":")
        if not sep:
            local = remote = spec
        try:
            pair = (int(local or 0), int(remote))
        except ValueError:
            raise CliError(f"invalid port {spec!r}: expected [LOCAL:]REMOTE") from None
        if not 0 <= pair[0] < 65536 or not 0 < pair[1] < 65536:
            raise CliError(f"invalid port {spec!r}: ports are 1-65535")
        pairs.append(pair)
    return pairs


def _rank(pod: Message) -> tuple:
    """kubectl's choice among a selector's pods: running and ready, then running, then the oldest."""
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
    created = pod.metadata.creation_timestamp
    return (pod.status.phase != "Running", not ready, created.seconds, created.nanos, pod.metadata.name)


def service_target_port(service: Message, port: int, pod: Message) -> int:
    """The pod's port behind service port `port` (its targetPort, by number or by container port name)."""
    for sp in service.spec.ports:
        if sp.port != port:
            continue
        target = sp.target_port or str(sp.port)
        if target.isdigit():
            return int(target)
        for container in pod.spec.containers:
            for cp in container.ports:
                if cp.name == target:
                    return cp.container_port
        raise CliError(f"Pod '{pod.metadata.name}' does not have a named port '{target}'")
    raise CliError(f"Service {service.metadata.name} does not have a service port {port}")


async def resolve(client: ApiClient, target: str, namespace: str,
                  pairs: list[tuple[int, int]]) -> tuple[str, list[tuple[int, int, int]]]:
    """(pod name, [(local, remote as typed, port in the pod)]) for POD or TYPE/NAME."""
    resource, sep, name = target.partition("/")
    kind = kind_arg(resource) if sep else None
    if kind is None or kind.name == "Pod":
        pod_name = name if sep else target
        await client.get("Pod", pod_name, namespace)   # a missing pod fails here, not at the first connection
        return pod_name, [(local, remote, remote) for local, remote in pairs]
    obj = await client.get(kind.name, name, namespace)
    if kind.name == "Service":
        if not obj.spec.selector:
            raise CliError(f"cannot attach to *v1.Service: invalid service '{name}': "
                           "Service is defined without a selector")
        selector = ",".join(f"{k}={v}" for k, v in sorted(obj.spec.selector.items()))
    elif obj.DESCRIPTOR.fields_by_name.get("spec") and \
            obj.spec.DESCRIPTOR.fields_by_name.get("selector") and obj.spec.HasField("selector"):
        selector = labelselector.to_text(obj.spec.selector)
    else:
        raise CliError(f"cannot attach to {kind.resource}/{name}: it selects no pods")
    pods, _ = await client.list("Pod", namespace, selector)
    pods = [p for p in pods if not p.metadata.HasField("deletion_timestamp")]
    if not pods:
        raise CliError(f"no pods found for {kind.resource}/{name} (selector {selector})")
    pod = min(pods, key=_rank)
    ports = [(local, remote, service_target_port(obj, remote, pod) if kind.name == "Service" else remote)
             for local, remote in pairs]
    return pod.metadata.name, ports


def run(args: argparse.Namespace) -> int:
    pairs = parse_ports(args.ports)
    namespace = namespace_of(args)

    async def forward(client: ApiClient) -> int:
        pod, ports = await resolve(client, args.pod, namespace, pairs)
        servers = []
        for local, remote, inner in ports:
            server = await asyncio.start_server(
                lambda r, w, inner=inner: _carry(client, pod, namespace, inner, r, w),
                host=args.address, port=local)
            servers.append(server)
            bound = server.sockets[0].getsockname()[1]
            print(f"Forwarding from {args.address}:{bound} -> {inner}", flush=True)   # the pod's port, as kubectl
        try:
            await asyncio.gather(*(s.serve_forever() for s in servers))
        finally:
            for s in servers:
                s.close()
        return 0

    try:
        return call_api(args, forward)
    except KeyboardInterrupt:
        return 0


async def _carry(client: ApiClient, pod: str, namespace: str, remote: int,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    print(f"Handling connection for {remote}", flush=True)

    async def upstream() -> AsyncIterator[bytes]:
        while data := await reader.read(READ_CHUNK):
            yield data

    try:
        async for data in client.port_forward(pod, remote, namespace, data=upstream()):
            writer.write(data)
            await writer.drain()
    except ApiError as exc:
        print(f"error: forwarding to port {remote}: {exc.message}", flush=True)
    except ConnectionError:
        pass
    finally:
        writer.close()
