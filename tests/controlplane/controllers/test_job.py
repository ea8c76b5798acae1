"""The Job controller over FakeApiClient: completions with parallelism,
Indexed jobs, the backoff limit, the active deadline, suspend and the TTL."""
from __future__ import annotations

import asyncio

from controlplane.controllers.job import JobController, backoff_delay, format_indexes
from controlplane.testing import FakeApiClient, eventually, running
from proto.skiff.v1 import batch_pb2
from skiff.api import meta
from skiff.api.kinds.job import COMPLETION_INDEX
from skiff.client import NotFound
from skiff.controller import SharedInformerFactory


def _job(name="work", *, completions=None, parallelism=None, backoff=None, deadline=None, indexed=False,
         suspend=False, ttl=None) -> batch_pb2.Job:
    job = batch_pb2.Job()
    job.metadata.name = name
    if completions is not None:
        job.spec.completions = completions
    if parallelism is not None:
        job.spec.parallelism = parallelism
    if backoff is not None:
        job.spec.backoff_limit = backoff
    if deadline is not None:
        job.spec.active_deadline_seconds = deadline
    if ttl is not None:
        job.spec.ttl_seconds_after_finished = ttl
    if indexed:
        job.spec.completion_mode = "Indexed"
    job.spec.suspend = suspend
    job.spec.template.spec.restart_policy = "Never"
    job.spec.template.spec.containers.add(name="c", image="busybox")
    return job


async def _active(c, name="work"):
    pods, _ = await c.list("Pod", "default", label_selector=f"batch.kubernetes.io/job-name={name}")
    return [p for p in pods if p.status.phase not in ("Succeeded", "Failed")
            and not p.metadata.HasField("deletion_timestamp")]


async def _finish(c, pod, phase="Succeeded", when=None):
    pod.status.phase = phase
    meta.set_condition(pod.status.conditions, type_="Ready", status="False", now=meta.timestamp(when))
    await c.update_status(pod)


async def _condition(c, type_, name="work"):
    try:
        job = await c.get("Job", name)
    except NotFound:
        return None
    cond = meta.get_condition(job.status.conditions, type_)
    return job if cond is not None and cond.status == "True" else None


def run(body, *, clock=None, backoff_base=0.0):
    async def main():
        c = FakeApiClient()
        factory = SharedInformerFactory(c)
        kwargs = {"clock": clock} if clock else {}
        jc = JobController(client=c, factory=factory, backoff_base=backoff_base, **kwargs)
        async with running(jc, factory=factory):
            await body(c, jc)
    asyncio.run(main())


def test_pure_pieces():
    assert format_indexes([4, 0, 2, 1]) == "0-2,4"
    assert format_indexes([]) == ""
    assert [backoff_delay(n) for n in (0, 1, 2, 3, 10)] == [0, 10, 20, 40, 360]


def test_completions_run_parallelism_at_a_time():
    async def body(c, jc):
        await c.create(_job(completions=4, parallelism=2))
        for _ in range(2):
            pods = await eventually(lambda: _n(c, 2), what="2 active pods")
            for pod in pods:
                await _finish(c, pod)
        job = await eventually(lambda: _condition(c, "Complete"), what="Complete")
        assert (job.status.succeeded, job.status.active, job.status.failed) == (4, 0, 0)
        assert job.status.HasField("completion_time")
        assert await _active(c) == []
    run(body)


async def _none_active(c):
    return not await _active(c)


async def _n(c, n, name="work"):
    pods = await _active(c, name)
    return pods if len(pods) == n else None


def test_indexed_job_gives_each_pod_its_index():
    async def body(c, jc):
        await c.create(_job(completions=3, parallelism=3, indexed=True))
        pods = await eventually(lambda: _n(c, 3), what="3 pods")
        indexes = sorted(p.metadata.annotations[COMPLETION_INDEX] for p in pods)
        assert indexes == ["0", "1", "2"]
        for pod in pods:
            i = pod.metadata.annotations[COMPLETION_INDEX]
            assert {e.name: e.value for e in pod.spec.containers[0].env}["JOB_COMPLETION_INDEX"] == i
            assert pod.spec.hostname == f"work-{i}"
        await _finish(c, pods[0])
        await _finish(c, pods[1], "Failed")

        async def replaced():  # the failed index runs again, the succeeded one does not
            active = await _active(c)
            return sorted(p.metadata.annotations[COMPLETION_INDEX] for p in active)
        again = await eventually(lambda: _eq(replaced(), sorted([pods[1].metadata.annotations[COMPLETION_INDEX],
                                                                 pods[2].metadata.annotations[COMPLETION_INDEX]])),
                                 what="the failed index re-created")
        assert again
        for pod in await _active(c):
            await _finish(c, pod)
        job = await eventually(lambda: _condition(c, "Complete"), what="Complete")
        assert job.status.completed_indexes == "0-2"
    run(body)


async def _eq(coro, expected):
    return await coro == expected


def test_backoff_limit_fails_the_job():
    async def body(c, jc):
        await c.create(_job(backoff=1))
        for _ in range(2):
            (pod,) = await eventually(lambda: _n(c, 1), what="a pod")
            await _finish(c, pod, "Failed")
        job = await eventually(lambda: _condition(c, "Failed"), what="Failed")
        cond = meta.get_condition(job.status.conditions, "Failed")
        assert cond.reason == "BackoffLimitExceeded" and job.status.failed == 2
    run(body)


def test_active_deadline_fails_the_job_and_stops_its_pods():
    now = [1000.0]

    async def body(c, jc):
        await c.create(_job(parallelism=2, deadline=30))
        await eventually(lambda: _n(c, 2), what="2 pods")
        now[0] += 31
        jc.enqueue(("default", "work"))
        job = await eventually(lambda: _condition(c, "Failed"), what="Failed")
        assert meta.get_condition(job.status.conditions, "Failed").reason == "DeadlineExceeded"
        await eventually(lambda: _none_active(c), what="pods deleted")
    run(body, clock=lambda: now[0])


def test_suspend_and_resume():
    async def body(c, jc):
        await c.create(_job(suspend=True))
        await eventually(lambda: _condition(c, "Suspended"), what="Suspended")
        assert await _active(c) == []
        job = await c.get("Job", "work")
        job.spec.suspend = False
        await c.update(job)
        await eventually(lambda: _n(c, 1), what="a pod after resume")
    run(body)


def test_finished_job_is_deleted_after_its_ttl():
    now = [1000.0]

    async def body(c, jc):
        await c.create(_job(ttl=60))
        (pod,) = await eventually(lambda: _n(c, 1), what="a pod")
        await _finish(c, pod)
        await eventually(lambda: _condition(c, "Complete"), what="Complete")
        now[0] += 61
        jc.enqueue(("default", "work"))

        async def gone():
            try:
                await c.get("Job", "work")
            except NotFound:
                return True
            return False
        await eventually(gone, what="job deleted")
    run(body, clock=lambda: now[0])
