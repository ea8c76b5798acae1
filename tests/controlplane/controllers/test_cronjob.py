"""The CronJob controller over FakeApiClient with a stepped clock: a Job per
scheduled time (made once), Forbid and Replace, the starting deadline, at most
one catch-up after many missed times, suspend, and the history limits."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from controlplane.controllers.cronjob import CronJobController, job_name, most_recent
from controlplane.events import EventRecorder
from controlplane.testing import FakeApiClient, eventually, running
from proto.skiff.v1 import batch_pb2
from skiff.api import cron, meta
from skiff.controller import SharedInformerFactory

T0 = datetime(2026, 1, 1, 12, 0, 30, tzinfo=timezone.utc).timestamp()


def _cronjob(schedule="* * * * *", *, policy="", deadline=None, suspend=False, keep=None) -> batch_pb2.CronJob:
    cj = batch_pb2.CronJob()
    cj.metadata.name = "tick"
    cj.spec.schedule = schedule
    cj.spec.concurrency_policy = policy
    cj.spec.suspend = suspend
    if deadline is not None:
        cj.spec.starting_deadline_seconds = deadline
    if keep is not None:
        cj.spec.successful_jobs_history_limit = keep
    tpl = cj.spec.job_template.spec.template.spec
    tpl.restart_policy = "Never"
    tpl.containers.add(name="c", image="busybox")
    return cj


async def _jobs(c):
    jobs, _ = await c.list("Job", "default")
    return sorted(j.metadata.name for j in jobs)


async def _has_jobs(c, n):
    names = await _jobs(c)
    return names if len(names) == n else None


async def _complete(c, name, when):
    job = await c.get("Job", name)
    cond = job.status.conditions.add(type="Complete", status="True")
    cond.last_transition_time.CopyFrom(meta.timestamp(when))
    job.status.completion_time.CopyFrom(meta.timestamp(when))
    job.status.start_time.CopyFrom(meta.timestamp(when - 1))
    await c.update_status(job)


def run(body, now):
    async def main():
        c = FakeApiClient()
        factory = SharedInformerFactory(c)
        cc = CronJobController(client=c, factory=factory, clock=lambda: now[0],
                               recorder=EventRecorder(client=c, component="cronjob-controller"))
        async with running(cc, factory=factory):
            await body(c, cc)
    asyncio.run(main())


def test_most_recent_counts_missed_times():
    s = cron.parse("* * * * *")
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    t, n = most_recent(s, start, datetime(2026, 1, 1, 0, 10, 30, tzinfo=timezone.utc))
    assert (t, n) == (datetime(2026, 1, 1, 0, 10, tzinfo=timezone.utc), 10)
    t, n = most_recent(s, start, datetime(2026, 1, 2, tzinfo=timezone.utc))
    assert t == datetime(2026, 1, 2, tzinfo=timezone.utc) and n > 100


def test_one_job_per_scheduled_time_and_last_schedule_time():
    now = [0.0]

    async def body(c, cc):
        cj = await c.create(_cronjob())
        created = meta.seconds(cj.metadata.creation_timestamp)
        now[0] = created + 61
        cc.enqueue(("default", "tick"))
        (name,) = await eventually(lambda: _has_jobs(c, 1), what="the first job")
        cj = await c.get("CronJob", "tick")
        scheduled = datetime.fromtimestamp(meta.seconds(cj.status.last_schedule_time), timezone.utc)
        assert name == job_name("tick", scheduled)
        assert [r.name for r in cj.status.active] == [name]
        for _ in range(3):   # looking again in the same minute makes nothing new
            cc.enqueue(("default", "tick"))
            await asyncio.sleep(0.05)
        assert await _jobs(c) == [name]
        job = await c.get("Job", name)
        assert job.metadata.owner_references[0].kind == "CronJob"
        assert "batch.kubernetes.io/cronjob-scheduled-timestamp" in job.metadata.annotations
    run(body, now)


def test_forbid_waits_and_replace_replaces():
    now = [0.0]

    async def body(c, cc):
        cj = await c.create(_cronjob(policy="Forbid"))
        base = meta.seconds(cj.metadata.creation_timestamp)
        now[0] = base + 61
        cc.enqueue(("default", "tick"))
        (first,) = await eventually(lambda: _has_jobs(c, 1), what="first job")
        now[0] = base + 121
        cc.enqueue(("default", "tick"))
        await asyncio.sleep(0.2)
        assert await _jobs(c) == [first]          # Forbid: the first still runs
        cj = await c.get("CronJob", "tick")
        cj.spec.concurrency_policy = "Replace"
        await c.update(cj)
        second = await eventually(lambda: _first_gone(c, first), what="replaced")
        assert second != first
    run(body, now)


async def _first_gone(c, first):
    names = await _jobs(c)
    return names[0] if len(names) == 1 and names[0] != first else None


def test_missed_past_the_deadline_is_skipped_and_many_missed_run_once():
    now = [0.0]

    async def body(c, cc):
        cj = await c.create(_cronjob(deadline=10))
        base = meta.seconds(cj.metadata.creation_timestamp)
        # 30+ s after the minute with a 10 s deadline: skipped.
        minute = (int(base) // 60 + 1) * 60
        now[0] = minute + 30
        cc.enqueue(("default", "tick"))
        await asyncio.sleep(0.2)
        assert await _jobs(c) == []
        cj = await c.get("CronJob", "tick")
        cj.spec.ClearField("starting_deadline_seconds")
        await c.update(cj)
        now[0] = base + 5 * 3600      # 300 missed: one run, for the latest time
        cc.enqueue(("default", "tick"))
        (name,) = await eventually(lambda: _has_jobs(c, 1), what="one catch-up job")
        assert name == job_name("tick", datetime.fromtimestamp((int(now[0]) // 60) * 60, timezone.utc))
        events, _ = await c.list("Event", "default")
        reasons = {e.reason for e in events}
        assert {"TooManyMissedTimes", "SuccessfulCreate"} <= reasons, reasons
    run(body, now)


def test_suspended_makes_nothing_and_history_is_trimmed():
    now = [0.0]

    async def body(c, cc):
        cj = await c.create(_cronjob(suspend=True, keep=1))
        base = meta.seconds(cj.metadata.creation_timestamp)
        now[0] = base + 61
        cc.enqueue(("default", "tick"))
        await asyncio.sleep(0.2)
        assert await _jobs(c) == []
        cj.spec.suspend = False
        cj = await c.get("CronJob", "tick")
        cj.spec.suspend = False
        await c.update(cj)
        (first,) = await eventually(lambda: _has_jobs(c, 1), what="job after resume")
        await _complete(c, first, now[0])
        now[0] += 60
        cc.enqueue(("default", "tick"))
        names = await eventually(lambda: _has_jobs(c, 2), what="second job")
        second = [n for n in names if n != first][0]
        await _complete(c, second, now[0])

        async def trimmed():   # keep 1 successful: the first goes
            return await _jobs(c) == [second]
        await eventually(trimmed, what="history trimmed to 1")
        cj = await c.get("CronJob", "tick")
        assert cj.status.HasField("last_successful_time") and not cj.status.active
    run(body, now)
