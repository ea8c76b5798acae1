"""The control plane's readiness follows its own informers (issue 15): /readyz
on the REST front door and on the metrics port (what `skiff status` reads) say
503 naming the informer and the error once one has been failing past the bound,
and ok again once its watch delivers; /livez stays ok."""
from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from controlplane.api.proxy import AgentProxy
from controlplane.api.registry import Registry
from controlplane.main import _readyz
from controlplane.metrics import Metrics, MetricsServer
from controlplane.rest import RestServer
from controlplane.store.memory import MemoryStore
from proto.skiff.v1 import types_pb2
from skiff.cli._cluster import ClusterConfig, _controlplane_ready
from skiff.client import Unavailable
from skiff.controller import ControllerMetrics, SharedInformerFactory
from skiff.retry import Backoff


class FlakyApi:
    down = True

    async def list(self, kind, namespace="", label_selector="", field_selector=""):
        if self.down:
            raise Unavailable("the API at 127.0.0.1:1 is unreachable")
        return [], "3"

    async def watch(self, kind, namespace="", label_selector="", field_selector="", resource_version="",
                    bookmarks=False):
        node = types_pb2.Node()
        node.metadata.name, node.metadata.resource_version = "n1", "4"
        yield "ADDED", node, "4"
        await asyncio.Event().wait()


async def until(check, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


def test_readyz_reports_an_informer_failing_past_the_bound_and_recovers(tmp_path: Path):
    async def scenario():
        api = FlakyApi()
        factory = SharedInformerFactory(api, metrics=ControllerMetrics(CollectorRegistry()),
                                        backoff=Backoff(initial=0.01, maximum=0.02))
        informer = factory.informer("Node")
        store = MemoryStore()
        rest = RestServer(registry=Registry(store=store), proxy=AgentProxy(store=store), listen="127.0.0.1:0")
        rest.readiness = lambda: factory.problems(0.05)
        metrics_server = MetricsServer(metrics=Metrics(), host="127.0.0.1", port=0)
        metrics_server.routes["/readyz"] = lambda: _readyz(factory.problems(0.05))
        metrics_server.start()
        config = dataclasses.replace(ClusterConfig(data_dir=tmp_path, run_dir=tmp_path / "run", node_name="n1"),
                                     controlplane_metrics_port=metrics_server.port)
        try:
            async with TestClient(TestServer(rest.app)) as client:
                assert (await client.get("/readyz")).status == 200     # nothing has failed yet
                factory.start()

                async def not_ready() -> bool:
                    return (await client.get("/readyz")).status == 503
                await until(not_ready)
                text = await (await client.get("/readyz")).text()
                assert "[-]informer failed: Informer(Node)" in text and "127.0.0.1:1 is unreachable" in text, text
                assert text.endswith("readyz check failed\n")
                assert (await client.get("/livez")).status == 200
                status = await asyncio.to_thread(_controlplane_ready, config)
                assert status is not None and "Informer(Node)" in status and "unreachable" in status, status

                api.down = False
                await until(lambda: asyncio.sleep(0, informer.get(("", "n1")) is not None))
                response = await client.get("/readyz")
                assert response.status == 200 and await response.text() == "ok"
                assert await asyncio.to_thread(_controlplane_ready, config) is None
        finally:
            await factory.stop()
            await metrics_server.stop()
    asyncio.run(scenario())
