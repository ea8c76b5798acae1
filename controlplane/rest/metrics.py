"""metrics.k8s.io/v1beta1 (what `kubectl top` reads, metrics-server's API):
NodeMetrics and PodMetrics from the agents' stats, through the same
AgentProxy.stats call `skiff top` uses.

CPU is a rate, so each node is asked twice, WINDOW_SECONDS apart (as
`skiff top` does; metrics-server averages over its scrape interval); memory
is the working set. A node whose agent does not answer is left out, as
metrics-server leaves out what it could not scrape.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from google.protobuf.message import Message

from controlplane.api.proxy import AgentProxy
from controlplane.api.registry import Registry
from controlplane.rest.resources import respond
from controlplane.rest.status import ApiError, not_found
from proto.skiff.v1 import api_pb2
from skiff.api import kinds

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
WINDOW_SECONDS = 1.0
RESOURCES = {"nodes": ("NodeMetrics", False), "pods": ("PodMetrics", True)}


def api_group() -> dict[str, Any]:
    gv = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
    return {"name": GROUP, "versions": [gv], "preferredVersion": gv}


def resource_list() -> dict[str, Any]:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
            "resources": [{"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
                           "verbs": ["get", "list"]} for name, (kind, namespaced) in RESOURCES.items()]}


def aggregated_group() -> dict[str, Any]:
    """This group in aggregated discovery's form."""
    resources = [{"resource": name, "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
                  "scope": "Namespaced" if namespaced else "Cluster", "singularResource": "",
                  "verbs": ["get", "list"]} for name, (kind, namespaced) in RESOURCES.items()]
    return {"metadata": {"name": GROUP, "creationTimestamp": None},
            "versions": [{"version": VERSION, "resources": resources, "freshness": "Current"}]}


async def _samples(proxy: AgentProxy, nodes: list[str]) -> dict[str, tuple[Message, Message, float]]:
    async def one(name: str) -> Message | None:
        try:
            return await proxy.stats(api_pb2.StatsRequest(node_name=name))
        except Exception:  # noqa: BLE001 - an agent that does not answer is left out
            return None

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    first = await asyncio.gather(*(one(n) for n in nodes))
    await asyncio.sleep(WINDOW_SECONDS)
    second = await asyncio.gather(*(one(n) for n in nodes))
    seconds = max(loop.time() - t0, 1e-3)
    return {n: (a, b, seconds) for n, a, b in zip(nodes, first, second) if a is not None and b is not None}


def _usage(cpu_before: float, cpu_after: float, seconds: float, memory: int) -> dict[str, str]:
    nanocores = max(0, round((cpu_after - cpu_before) / seconds * 1e9))
    return {"cpu": f"{nanocores}n", "memory": f"{memory // 1024}Ki"}


async def serve(request: web.Request, parts: list[str], *, registry: Registry, proxy: AgentProxy) -> web.Response:
    """GET /apis/metrics.k8s.io/v1beta1/[namespaces/<ns>/]{nodes,pods}[/<name>]."""
    namespace = ""
    if len(parts) >= 3 and parts[0] == "namespaces":
        namespace, parts = parts[1], parts[2:]
    if not parts or parts[0] not in RESOURCES or len(parts) > 2 or (namespace and parts[0] == "nodes"):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if request.method != "GET":
        raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource "
                                                f"({request.method} {parts[0]}.{GROUP})")
    name = parts[1] if len(parts) == 2 else ""
    nodes, _ = await registry.list(kinds.kind_named("Node"))
    samples = await _samples(proxy, [n.metadata.name for n in nodes])
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    window = f"{WINDOW_SECONDS:g}s"
    items: list[dict[str, Any]] = []
    if parts[0] == "nodes":
        for node, (a, b, seconds) in sorted(samples.items()):
            items.append({"metadata": {"name": node}, "timestamp": now, "window": window,
                          "usage": _usage(a.cpu_usage_seconds, b.cpu_usage_seconds, seconds,
                                          b.memory_working_set_bytes)})
    else:
        pods: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for a, b, seconds in samples.values():
            before = {(c.namespace, c.pod, c.container): c.cpu_usage_seconds for c in a.containers}
            for c in b.containers:
                if namespace and c.namespace != namespace:
                    continue
                pods.setdefault((c.namespace, c.pod), []).append({"name": c.container, "usage": _usage(
                    before.get((c.namespace, c.pod, c.container), c.cpu_usage_seconds), c.cpu_usage_seconds,
                    seconds, c.memory_working_set_bytes)})
        for (ns, pod), containers in sorted(pods.items()):
            items.append({"metadata": {"name": pod, "namespace": ns}, "timestamp": now, "window": window,
                          "containers": containers})
    kind = RESOURCES[parts[0]][0]
    if name:
        match = next((i for i in items if i["metadata"]["name"] == name), None)
        if match is None:
            raise not_found(f"{parts[0]}.{GROUP}", name)
        return respond({"kind": kind, "apiVersion": f"{GROUP}/{VERSION}", **match})
    return respond({"kind": f"{kind}List", "apiVersion": f"{GROUP}/{VERSION}", "metadata": {}, "items": items})
