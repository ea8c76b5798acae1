"""WorkQueue: de-duplication, one worker per key, per-key back-off, add_after, shutdown, metrics."""
import asyncio

import pytest
from prometheus_client import CollectorRegistry

from skiff.controller import ControllerMetrics, ShutDown, WorkQueue
from skiff.retry import Backoff


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_a_key_added_many_times_is_queued_once_in_order():
    async def body():
        q = WorkQueue("t")
        for key in ("a", "b", "a", "c", "b"):
            q.add(key)
        assert len(q) == 3
        assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    run(body())


def test_a_key_being_processed_is_not_handed_out_again_until_done():
    async def body():
        q = WorkQueue("t")
        q.add("a")
        assert await q.get() == "a"
        q.add("a")                         # changed while a worker holds it
        q.add("a")
        assert len(q) == 0                 # not given to a second worker
        second = asyncio.ensure_future(q.get())
        await asyncio.sleep(0.01)
        assert not second.done()
        q.done("a")                        # ... but processed again after
        assert await second == "a"
        q.done("a")
        assert len(q) == 0
    run(body())


def test_several_workers_never_hold_the_same_key():
    async def body():
        q = WorkQueue("t")
        holding: set[str] = set()
        seen: list[str] = []

        async def worker():
            while True:
                key = await q.get()
                assert key not in holding
                holding.add(key)
                seen.append(key)
                await asyncio.sleep(0.001)
                holding.discard(key)
                q.done(key)

        workers = [asyncio.ensure_future(worker()) for _ in range(4)]
        for i in range(200):
            q.add(f"k{i % 7}")
            await asyncio.sleep(0)
        while len(q) or holding:
            await asyncio.sleep(0.005)
        q.shutdown()
        results = await asyncio.gather(*workers, return_exceptions=True)
        assert all(isinstance(r, ShutDown) for r in results)
        assert set(seen) == {f"k{i}" for i in range(7)}
    run(body())


def test_rate_limited_back_off_grows_per_key_and_forget_resets_it():
    async def body():
        q = WorkQueue("t", backoff=Backoff(initial=0.01, maximum=0.04, jitter=False))
        assert [q.add_rate_limited("a") for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]
        assert q.num_requeues("a") == 4
        assert q.add_rate_limited("b") == 0.01       # per key
        q.forget("a")
        assert q.num_requeues("a") == 0 and q.add_rate_limited("a") == 0.01
        assert len(q) == 0
        await asyncio.sleep(0.05)
        assert sorted([await q.get(), await q.get()]) == ["a", "b"]
    run(body())


def test_add_after_keeps_the_sooner_of_two_and_zero_is_now():
    async def body():
        q = WorkQueue("t")
        q.add_after("a", 5)
        q.add_after("a", 0.02)            # sooner wins
        q.add_after("a", 3)               # later is ignored
        q.add_after("b", 0)
        assert await q.get() == "b"
        got = await asyncio.wait_for(q.get(), 1)
        assert got == "a"
    run(body())


def test_shutdown_wakes_waiting_workers_and_cancels_timers():
    async def body():
        q = WorkQueue("t")
        waiting = asyncio.ensure_future(q.get())
        await asyncio.sleep(0)
        q.add_after("x", 0.01)
        q.shutdown()
        with pytest.raises(ShutDown):
            await waiting
        await asyncio.sleep(0.02)
        q.add("y")
        with pytest.raises(ShutDown):
            await q.get()
    run(body())


def test_kubernetes_workqueue_metrics_by_queue_name():
    async def body():
        registry = CollectorRegistry()
        q = WorkQueue("pods", metrics=ControllerMetrics(registry))
        q.add("a")
        q.add("b")
        q.add("a")
        assert registry.get_sample_value("workqueue_depth", {"name": "pods"}) == 2
        key = await q.get()
        q.done(key)
        q.add_rate_limited("a")
        value = registry.get_sample_value
        assert value("workqueue_adds_total", {"name": "pods"}) == 2
        assert value("workqueue_retries_total", {"name": "pods"}) == 1
        assert value("workqueue_depth", {"name": "pods"}) == 1
        assert value("workqueue_queue_duration_seconds_count", {"name": "pods"}) == 1
        assert value("workqueue_work_duration_seconds_count", {"name": "pods"}) == 1
        q.shutdown()
    run(body())
