"""The REST front door in-process over a MemoryStore (the same Registry the
gRPC service uses): Tables with `skiff get`'s columns, watch bookmarks and
the 410 ERROR event after compaction, as Kubernetes' API server sends them."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from controlplane.api.proxy import AgentProxy
from controlplane.api.registry import Registry
from controlplane.rest import RestServer
from controlplane.store.memory import MemoryStore
from skiff.api import kinds, printers
from skiff.api.convert import to_object

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def pod(name: str) -> Any:
    return to_object({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                      "spec": {"containers": [{"name": "c", "image": "busybox"}]}})


async def with_server(body, *, bookmark_seconds: float = 10.0) -> None:
    store = MemoryStore()
    registry = Registry(store=store)
    await registry.bootstrap()
    rest = RestServer(registry=registry, proxy=AgentProxy(store=store), listen="127.0.0.1:0",
                      bookmark_seconds=bookmark_seconds)
    async with TestClient(TestServer(rest.app)) as client:
        await body(client, registry, store)


async def watch_lines(client: TestClient, path: str, count: int) -> list[dict[str, Any]]:
    response = await client.get(path)
    assert response.status == 200
    lines = []
    while len(lines) < count:
        line = await asyncio.wait_for(response.content.readline(), timeout=30)
        assert line, f"the stream ended after {lines}"
        lines.append(json.loads(line))
    response.close()
    return lines


def test_table_columns_are_skiff_gets():
    async def body(client, registry, store):
        await registry.create(pod("web"))
        response = await client.get("/api/v1/namespaces/default/pods", headers={"Accept": TABLE})
        table = await response.json()
        assert table["kind"] == "Table"
        kind = kinds.kind_named("Pod")
        narrow = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
        wide = [c["name"] for c in table["columnDefinitions"]]
        skiff_get = printers.table([await registry.get(kind, "default", "web")], kind=kind).splitlines()[0].split()
        assert narrow == skiff_get and wide == kind.strategy.columns(wide=True)
        assert table["rows"][0]["cells"][0] == "web"
        assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    asyncio.run(with_server(body))


def test_watch_bookmarks_and_gone_after_compaction():
    async def body(client, registry, store):
        created = await registry.create(pod("a"))
        rv = created.metadata.resource_version
        path = f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=true"
        (bookmark,) = await watch_lines(client, path, 1)
        assert bookmark == {"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1",
                                                           "metadata": {"resourceVersion": rv}}}
        await registry.create(pod("b"))
        await registry.create(pod("c"))
        await store.compact(await store.revision())
        (error,) = await watch_lines(client, f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}", 1)
        assert error["type"] == "ERROR"
        assert (error["object"]["kind"], error["object"]["code"], error["object"]["reason"]) == ("Status", 410,
                                                                                                 "Expired")
    asyncio.run(with_server(body, bookmark_seconds=0.5))


def test_watch_streams_changes_as_tables_for_kubectl_get_w():
    async def body(client, registry, store):
        response = await client.get("/api/v1/namespaces/default/pods?watch=1", headers={"Accept": TABLE})
        await registry.create(pod("a"))
        event = json.loads(await asyncio.wait_for(response.content.readline(), timeout=30))
        response.close()
        assert event["type"] == "ADDED" and event["object"]["kind"] == "Table"
        assert event["object"]["rows"][0]["cells"][:3] == ["a", "0/1", "Pending"]
    asyncio.run(with_server(body))


def test_aggregated_discovery_when_asked_legacy_otherwise():
    async def body(client, registry, store):
        accept = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                  "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
        response = await client.get("/apis", headers={"Accept": accept})
        assert response.headers["Content-Type"].startswith("application/json;g=apidiscovery.k8s.io;v=v2")
        listing = await response.json(content_type=None)
        apps = next(i for i in listing["items"] if i["metadata"]["name"] == "apps")
        deployments = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
        assert deployments["scope"] == "Namespaced" and deployments["shortNames"] == ["deploy"]
        assert {s["subresource"] for s in deployments["subresources"]} == {"status", "scale"}
        legacy = await (await client.get("/apis", headers={"Accept": "application/json"})).json()
        assert legacy["kind"] == "APIGroupList"
    asyncio.run(with_server(body))


def test_protobuf_body_of_a_kind_not_read_that_way_is_415():
    def field(number: int, data: bytes) -> bytes:
        return bytes([number << 3 | 2, len(data)]) + data

    body = b"k8s\x00" + field(1, field(1, b"apps/v1") + field(2, b"ReplicaSet")) + field(2, b"")

    async def run(client, registry, store):
        response = await client.post("/apis/apps/v1/namespaces/default/replicasets", data=body,
                                     headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
        status = await response.json()
        assert (response.status, status["reason"]) == (415, "UnsupportedMediaType")
        assert "kubectl apply -f" in status["message"]
    asyncio.run(with_server(run))
