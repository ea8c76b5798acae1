"""The max-in-flight limits (controlplane/api/inflight.py): past them a request is refused at
once with 429 and Retry-After, long-running requests do not count, and clients retry."""
from __future__ import annotations

import asyncio
import urllib.request

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from controlplane.api.inflight import MESSAGE, InflightLimits, Overloaded
from proto.skiff.v1 import types_pb2
from tests.conftest import free_port


def test_a_kind_at_its_limit_refuses_one_more_and_takes_it_once_one_ends():
    registry = CollectorRegistry()
    current = Gauge("current", "", ["request_kind"], registry=registry)
    dropped = Counter("dropped", "", ["request_kind"], registry=registry)
    limits = InflightLimits(readonly=2, mutating=1, current=current, dropped=dropped)
    with limits.hold(mutating=False), limits.hold(mutating=False):
        assert registry.get_sample_value("current", {"request_kind": "readOnly"}) == 2
        with pytest.raises(Overloaded) as refused:
            with limits.hold(mutating=False):
                pass
        assert (refused.value.message, refused.value.retry_after) == (MESSAGE, 1)
        with limits.hold(mutating=True):   # the other kind has its own limit
            with pytest.raises(Overloaded):
                with limits.hold(mutating=True):
                    pass
    with limits.hold(mutating=False):      # released: room again
        pass
    assert registry.get_sample_value("current", {"request_kind": "readOnly"}) == 0
    assert registry.get_sample_value("dropped_total", {"request_kind": "readOnly"}) == 1
    assert registry.get_sample_value("dropped_total", {"request_kind": "mutating"}) == 1
    unlimited = InflightLimits(readonly=0, mutating=0)
    with unlimited.hold(mutating=True), unlimited.hold(mutating=True):
        pass


def pod(name: str) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, "default"
    p.spec.containers.add(name="c", image="busybox")
    return p


def test_over_the_limit_rest_answers_429_with_retry_after_a_watch_does_not_count_and_grpc_retries(
        controlplane_factory):
    port = free_port()
    info = controlplane_factory("--rest-listen", f"127.0.0.1:{port}", "--max-requests-inflight", "1",
                                "--max-mutating-requests-inflight", "1")
    url = f"http://127.0.0.1:{port}"

    async def main():
        async with info.client() as client:
            # Five creates at once against a limit of one: refused ones are retried after the
            # server's Retry-After (as client-go does), so every one lands.
            created = await asyncio.gather(*(client.create(pod(f"p-{i}")) for i in range(5)))
            assert sorted(p.metadata.name for p in created) == [f"p-{i}" for i in range(5)]
        async with aiohttp.ClientSession() as http:
            # A watch is long-running: it holds no slot while it is open.
            watch = await http.get(f"{url}/api/v1/namespaces/default/pods?watch=1")
            assert watch.status == 200
            responses = await asyncio.gather(*(http.get(f"{url}/api/v1/namespaces/default/pods")
                                               for _ in range(40)))
            statuses = [r.status for r in responses]
            assert 200 in statuses and 429 in statuses, statuses
            refused = responses[statuses.index(429)]
            body = await refused.json()
            assert refused.headers["Retry-After"] == "1"
            assert (body["reason"], body["message"], body["details"]["retryAfterSeconds"]) == \
                ("TooManyRequests", "Too many requests, please try again later.", 1)
            for _ in range(20):   # the watch is still open; the control plane's own calls may hold the slot a moment
                alone = await http.get(f"{url}/api/v1/namespaces/default/pods")
                if alone.status != 429:
                    break
                await asyncio.sleep(0.1)
            assert alone.status == 200 and len((await alone.json())["items"]) == 5
            health = await asyncio.gather(*(http.get(f"{url}/readyz") for _ in range(20)))
            assert {r.status for r in health} == {200}   # health checks are never refused
            watch.close()

    asyncio.run(main())
    with urllib.request.urlopen(f"http://{info.metrics_address}/metrics", timeout=10) as response:
        text = response.read().decode()
    dropped = [line for line in text.splitlines()
               if line.startswith('apiserver_dropped_requests_total{request_kind="readOnly"}')]
    assert dropped and float(dropped[0].split()[-1]) >= 1
    assert 'apiserver_current_inflight_requests{request_kind="mutating"} 0.0' in text
