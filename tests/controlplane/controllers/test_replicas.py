"""Which pods count, the scale-down order, slow-start batches, expectations."""
from __future__ import annotations

import asyncio

import pytest

from controlplane.controllers import replicas
from proto.skiff.v1 import types_pb2
from skiff.api import meta

NOW = 1_000_000.0


def _pod(name: str, *, node: str = "n1", phase: str = "Running", ready_since: float | None = NOW - 100,
         restarts: int = 0, created: float = NOW - 1000) -> types_pb2.Pod:
    pod = types_pb2.Pod()
    pod.metadata.name = name
    pod.metadata.creation_timestamp.CopyFrom(meta.timestamp(created))
    pod.spec.node_name = node
    pod.status.phase = phase
    if ready_since is not None:
        meta.set_condition(pod.status.conditions, type_="Ready", status="True", now=meta.timestamp(ready_since))
    else:
        meta.set_condition(pod.status.conditions, type_="Ready", status="False", now=meta.timestamp(NOW - 5))
    pod.status.container_statuses.add(name="c", restart_count=restarts)
    return pod


def _names(pods):
    return [p.metadata.name for p in pods]


def test_scale_down_order_is_kubernetes():
    pods = [
        _pod("old-ready", ready_since=NOW - 500),
        _pod("new-ready", ready_since=NOW - 10),
        _pod("restarty", ready_since=NOW - 500, restarts=3),
        _pod("not-ready", ready_since=None),
        _pod("unknown", phase="Unknown", ready_since=None),
        _pod("pending", phase="Pending", ready_since=None),
        _pod("unscheduled", node="", phase="Pending", ready_since=None),
    ]
    assert _names(replicas.deletion_order(pods)) == [
        "unscheduled", "pending", "unknown", "not-ready", "new-ready", "restarty", "old-ready"]


def test_newer_pod_goes_first_when_all_else_is_equal():
    pods = [_pod("older", created=NOW - 900), _pod("newer", created=NOW - 100)]
    assert _names(replicas.deletion_order(pods)) == ["newer", "older"]


def test_doubled_up_pods_go_before_lonely_ones():
    pods = [_pod("alone", node="a"), _pod("crowded-1", node="b"), _pod("crowded-2", node="b")]
    assert _names(replicas.deletion_order(pods))[0].startswith("crowded")


def test_available_needs_min_ready_seconds():
    pod = _pod("p", ready_since=NOW - 5)
    assert replicas.is_available(pod, 0, NOW)
    assert not replicas.is_available(pod, 10, NOW)
    assert replicas.is_available(pod, 5, NOW)
    assert replicas.available_in(pod, 10, NOW) == pytest.approx(5)
    assert not replicas.is_available(_pod("q", ready_since=None), 0, NOW)


def test_active_excludes_finished_and_deleting():
    assert replicas.is_active(_pod("a"))
    assert not replicas.is_active(_pod("b", phase="Succeeded"))
    deleting = _pod("c")
    deleting.metadata.deletion_timestamp.CopyFrom(meta.timestamp(NOW))
    assert not replicas.is_active(deleting)


@pytest.mark.parametrize("count, batches", [(0, []), (1, [1]), (5, [1, 2, 2]), (10, [1, 2, 4, 3])])
def test_slow_start_batches(count, batches):
    seen: list[int] = []
    running = 0

    async def create() -> None:
        nonlocal running
        running += 1
        await asyncio.sleep(0)
        if running:
            seen.append(running)
            running = 0

    done, error = asyncio.run(replicas.slow_start(count, create))
    assert (done, error) == (count, None)
    assert seen == batches


def test_slow_start_stops_after_a_failed_batch():
    calls = 0

    async def create() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("quota exceeded")

    done, error = asyncio.run(replicas.slow_start(100, create))
    assert done == 0 and calls == 1 and str(error) == "quota exceeded"


def test_expectations_hold_until_seen_or_expired():
    now = [0.0]
    e = replicas.Expectations(ttl=60, clock=lambda: now[0])
    key = ("ns", "rs")
    assert e.satisfied(key)
    e.expect(key, adds=2)
    assert not e.satisfied(key)
    e.lower_adds(key)
    e.lower_adds(key)
    assert e.satisfied(key)
    e.expect(key, delete_uids=["u1"])
    e.deletion_seen(key, "other")
    assert not e.satisfied(key)
    now[0] = 61
    assert e.satisfied(key)
