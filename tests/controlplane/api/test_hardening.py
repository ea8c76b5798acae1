"""Bad input at the API, as a hostile or careless caller sends it (issue 15):
each call answers a clean code with a short message, and the watches of
everyone else keep delivering."""
import asyncio
import urllib.request

import grpc
import pytest

from proto.skiff.v1 import api_pb2, api_pb2_grpc, types_pb2
from skiff.client import ApiClient, ApiError, Gone, Invalid, NotFound

pytestmark = pytest.mark.etcd


def pod(name: str, *, annotation_bytes: int = 0, env_bytes: int = 0) -> types_pb2.Pod:
    p = types_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.spec.containers.add(name="c", image="busybox")
    p.spec.scheduler_name = "skiff-test-scheduler"   # the control plane's scheduler leaves it alone
    if annotation_bytes:
        p.metadata.annotations["big"] = "x" * annotation_bytes
    if env_bytes:   # big and valid: annotations are held to 256 KiB, an env value is not
        p.spec.containers[0].env.add(name="BIG", value="x" * env_bytes)
    return p


def run(address: str, body):
    async def main():
        async with ApiClient(address) as client:
            return await asyncio.wait_for(body(client), 60)
    return asyncio.run(main())


@pytest.mark.parametrize("resource_version, error, words", [
    ("-9999999999999999999", Invalid, "must not be negative"),
    ("99999999999999999999999", Gone, "newer than the store's revision"),
    ("abc", Invalid, "'abc'"),
])
def test_watch_from_an_impossible_resource_version_answers_at_once(controlplane, resource_version, error, words):
    # Once: INTERNAL "Value out of range", or a watch that never sent nor failed.
    async def body(c: ApiClient):
        with pytest.raises(error) as info:
            async for _ in c.watch("Pod", resource_version=resource_version):
                pass
        assert words in str(info.value) and "internal error" not in str(info.value)
    run(controlplane, body)


def test_exec_without_messages_is_invalid(controlplane):
    # Once: INTERNAL "async generator raised StopAsyncIteration".
    async def body(c: ApiClient):
        async with grpc.aio.insecure_channel(controlplane) as channel:
            call = api_pb2_grpc.ApiStub(channel).Exec(iter([]))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in call:
                    pass
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "must be `start`" in info.value.details()
    run(controlplane, body)


def test_an_error_echoing_a_huge_name_is_cut_to_fit_grpc_metadata(controlplane):
    # Once: RESOURCE_EXHAUSTED, the 100 KB message overflowing the trailers.
    async def body(c: ApiClient):
        with pytest.raises(NotFound) as info:
            await c.get("Pod", "x" * 100_000)
        assert "more characters)" in str(info.value) and len(str(info.value)) < 3000
    run(controlplane, body)


def test_an_object_beyond_the_store_limit_is_refused_with_the_limit_named(controlplane):
    # Once: "cannot reach etcd ... received message larger than max (2097474 vs. 2097152)".
    async def body(c: ApiClient):
        for dry_run in (True, False):   # the same answer with --dry-run=server as for the write
            with pytest.raises(Invalid) as info:
                await c.apply(pod("huge", annotation_bytes=2_000_000), dry_run=dry_run)
            message = str(info.value)
            assert "too large" in message or "must have at most" in message, message
            assert "received message larger than max" not in message and "cannot reach" not in message
        # Under the annotation limit, over the store's: the store's check names its limit.
        big = pod("big-env")
        for i in range(2):
            big.spec.containers[0].env.add(name=f"BIG{i}", value="x" * 1_000_000)
        for dry_run in (True, False):
            with pytest.raises(Invalid) as info:
                await c.apply(big, dry_run=dry_run)
            assert "the limit is 1568768 bytes" in str(info.value) and "spec" in str(info.value)
    run(controlplane, body)


def test_watches_keep_delivering_after_big_objects_and_a_failed_watch_is_counted(controlplane_info):
    async def body(c: ApiClient):
        _, before = await c.list("Pod")
        for i in range(4):   # just under the store's limit: 5.6 MB for a watcher catching up
            await c.create(pod(f"big{i}", env_bytes=1_400_000))
        nodes = c.watch("Node", resource_version=(await c.list("Node"))[1])
        next_node = asyncio.ensure_future(anext(nodes))
        caught_up = []
        async for _, obj, _ in c.watch("Pod", resource_version=before):
            caught_up.append(obj.metadata.name)
            if len(caught_up) == 4:
                break
        assert caught_up == ["big0", "big1", "big2", "big3"]
        node = types_pb2.Node(api_version="v1", kind="Node")
        node.metadata.name = "after-the-burst"
        await c.create(node)
        _, obj, _ = await next_node
        assert obj.metadata.name == "after-the-burst"
        await nodes.aclose()
        with pytest.raises(Gone):
            async for _ in c.watch("Pod", resource_version="99999999999999999999999"):
                pass
    run(controlplane_info.address, body)
    with urllib.request.urlopen(f"http://{controlplane_info.metrics_address}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert 'skiff_apiserver_watch_failures_total{code="OUT_OF_RANGE",kind="Pod"} 1.0' in metrics
    assert "watch of Pod ended: OUT_OF_RANGE" in controlplane_info.log.read_text()


@pytest.mark.parametrize("megabytes", [20, 70])
def test_a_request_far_beyond_any_limit_is_refused_at_the_door(controlplane, megabytes):
    # Once: 20 MB took 7 s a call and left the control plane 140 MB larger; 70 MB
    # came back as gRPC's "received message larger than max".
    async def body(c: ApiClient):
        for dry_run in (True, False):
            with pytest.raises(ApiError) as info:
                await asyncio.wait_for(c.apply(pod("huge", annotation_bytes=megabytes * 1_000_000),
                                               dry_run=dry_run), 30)
            message = str(info.value)
            assert "too large" in message and "the limit is" in message, message
        node = types_pb2.Node(api_version="v1", kind="Node")
        node.metadata.name = "still-answering"
        await c.create(node)
    run(controlplane, body)


def test_watches_deliver_after_a_pod_of_10000_containers_and_one_of_100000_env_entries(controlplane):
    async def body(c: ApiClient):
        _, before = await c.list("Pod")
        wide = pod("wide")
        for i in range(1, 10_000):
            wide.spec.containers.add(name=f"c{i}", image="busybox")
        await asyncio.wait_for(c.create(wide), 30)
        env = pod("env")
        for i in range(100_000):
            env.spec.containers[0].env.add(name=f"E{i}", value="v")
        await asyncio.wait_for(c.create(env), 30)   # ~1.3 MB: within the store's limit
        await c.create(pod("small"))
        seen = []
        async for _, obj, _ in c.watch("Pod", resource_version=before):   # 2.5 MB+ to catch up on
            seen.append(obj.metadata.name)
            if len(seen) == 3:
                break
        assert seen == ["wide", "env", "small"]
    run(controlplane, body)


@pytest.mark.parametrize("value", ["1e999999", "1e9999999"])
def test_a_huge_quantity_is_refused_by_the_server_at_once(controlplane, value):
    # Once ~25 s of CPU on the event loop (the leader lease lost again and again), or decimal.Overflow.
    async def body(c: ApiClient):
        bad = pod("greedy")
        bad.spec.containers[0].resources.limits["memory"] = value
        with pytest.raises(Invalid) as info:
            await asyncio.wait_for(c.apply(bad), 10)
        assert info.value.field_path == "spec.containers[0].resources.limits.memory"
        assert "too large, the limit is 9223372036854775807" in str(info.value)
    run(controlplane, body)
