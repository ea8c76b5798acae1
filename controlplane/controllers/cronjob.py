"""The CronJob controller: makes a Job from jobTemplate at each scheduled time
(Kubernetes' `cronjob_controllerv2.go`).

    CronJob or its Jobs change, or the next scheduled time comes ─► reconcile:
        status.active: the Jobs it made that have not finished; lastSuccessfulTime
        bad schedule or time zone ─► a Warning event, nothing more until it changes
        finished Jobs beyond successful/failedJobsHistoryLimit ─► deleted, oldest first
        suspended ─► nothing
        the most recent scheduled time since the last one (lastScheduleTime, or
        creation; no earlier than now - startingDeadlineSeconds):
            none                ─► look again at the next time
            more than 100 missed ─► a TooManyMissedTimes warning (still at most one run)
            past its deadline   ─► MissSchedule, skip it
            Forbid and a Job runs ─► wait (a finishing Job wakes us)
            Replace             ─► delete the running Jobs first
            ─► create Job NAME-<minutes since the epoch> (so a run is made once)

Times are computed in the CronJob's timeZone (skiff/api/cron.py); the clock is injected.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from google.protobuf.message import Message

from controlplane.controllers import ownership
from controlplane.controllers.job import finished
from controlplane.controllers.ownership import controller_ref
from controlplane.events import EventRecorder
from proto.skiff.v1 import batch_pb2, types_pb2
from skiff.api import cron, meta
from skiff.client import AlreadyExists, ApiClient, Conflict, NotFound
from skiff.controller import Controller, Key, SharedInformerFactory
from skiff.controller.lister import OWNER_INDEX

log = logging.getLogger(__name__)

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED = 100


def job_name(cronjob: str, scheduled: datetime) -> str:
    """One name per scheduled time: a run is made once however often we look."""
    return f"{cronjob}-{int(scheduled.timestamp()) // 60}"


def most_recent(schedule: cron.Schedule, earliest: datetime, now: datetime) -> tuple[datetime | None, int]:
    """The latest scheduled time in (earliest, now] and how many there were
    (counted up to TOO_MANY_MISSED + 1)."""
    missed, last, t = 0, None, schedule.next(earliest)
    while t is not None and t <= now:
        missed += 1
        last = t
        if missed > TOO_MANY_MISSED:
            # Many missed: find the latest by looking back from now in growing windows.
            for window in (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=367)):
                times = schedule.times(max(earliest, now - window), now)
                if times:
                    return times[-1], missed
            return last, missed
        t = schedule.next(t)
    return last, missed


def _ts(value: datetime):
    return meta.timestamp(value.timestamp())


def _dt(ts) -> datetime:
    return datetime.fromtimestamp(meta.seconds(ts), timezone.utc)


def reference(job: batch_pb2.Job) -> types_pb2.ObjectReference:
    return types_pb2.ObjectReference(kind="Job", api_version="batch/v1", namespace=job.metadata.namespace,
                                     name=job.metadata.name, uid=job.metadata.uid,
                                     resource_version=job.metadata.resource_version)


def job_from_template(cj: batch_pb2.CronJob, name: str, scheduled: datetime | None) -> batch_pb2.Job:
    template = cj.spec.job_template
    job = batch_pb2.Job(api_version="batch/v1", kind="Job")
    job.metadata.name = name
    job.metadata.namespace = cj.metadata.namespace
    job.metadata.labels.update(template.metadata.labels)
    job.metadata.annotations.update(template.metadata.annotations)
    if scheduled is not None:
        job.metadata.annotations[SCHEDULED_TIMESTAMP] = scheduled.astimezone(timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    job.metadata.owner_references.append(ownership.owner_reference(cj))
    job.spec.CopyFrom(template.spec)
    return job


class CronJobController(Controller):
    name = "cronjob"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory,
                 recorder: EventRecorder | None = None, clock: Callable[[], float] = time.time,
                 workers: int = 1) -> None:
        super().__init__(recorder=recorder, metrics=factory.metrics, workers=workers)
        self.client = client
        self.clock = clock
        self.cronjobs = self.watch(factory.informer("CronJob"))
        self.jobs = self.watch_dependents(factory.informer("Job"), owner_kind="CronJob")

    async def reconcile(self, key: Key) -> float | None:
        cached = self.cronjobs.get(key)
        if cached is None:
            return None
        cj = meta.copy(cached)
        now = datetime.fromtimestamp(self.clock(), timezone.utc)
        jobs = [j for j in self.jobs.lister.by_index(OWNER_INDEX, cj.metadata.uid)
                if (ref := controller_ref(j)) is not None and ref.uid == cj.metadata.uid]
        status = batch_pb2.CronJobStatus()
        status.CopyFrom(cj.status)
        running = [j for j in jobs if not finished(j)]
        del status.active[:]
        status.active.extend(reference(j) for j in sorted(running, key=lambda j: j.metadata.name))
        succeeded = [j for j in jobs if finished(j) == "Complete" and j.status.HasField("completion_time")]
        if succeeded:
            latest = max(succeeded, key=lambda j: meta.seconds(j.status.completion_time))
            if meta.seconds(latest.status.completion_time) > meta.seconds(status.last_successful_time):
                status.last_successful_time.CopyFrom(latest.status.completion_time)
        try:
            return await self._schedule(cj, status, jobs, running, now)
        finally:
            if status != cj.status:
                cj.status.CopyFrom(status)
                try:
                    await self.client.update_status(cj)
                except NotFound:
                    pass

    async def _schedule(self, cj: batch_pb2.CronJob, status: batch_pb2.CronJobStatus, jobs: list[batch_pb2.Job],
                        running: list[batch_pb2.Job], now: datetime) -> float | None:
        spec = cj.spec
        if cj.metadata.HasField("deletion_timestamp"):
            return None
        try:
            schedule = cron.parse(spec.schedule, tz=cron.zone(spec.time_zone))
        except cron.CronError as exc:
            reason = "UnknownTimeZone" if "time zone" in str(exc) else "UnparseableSchedule"
            await self._event(cj, "Warning", reason, f"unparseable schedule: {spec.schedule!r}: {exc}")
            return None
        await self._cleanup(cj, jobs)
        if spec.suspend:
            return None
        earliest = _dt(status.last_schedule_time) if status.HasField("last_schedule_time") else \
            _dt(cj.metadata.creation_timestamp)
        if spec.HasField("starting_deadline_seconds"):
            earliest = max(earliest, now - timedelta(seconds=spec.starting_deadline_seconds))
        scheduled, missed = most_recent(schedule, earliest, now)
        if scheduled is None:
            return self._until_next(schedule, now)
        if missed > TOO_MANY_MISSED:
            await self._event(cj, "Warning", "TooManyMissedTimes",
                              f"too many missed start times: {missed}. Set or decrease "
                              f".spec.startingDeadlineSeconds or check clock skew")
        if spec.HasField("starting_deadline_seconds") and \
                scheduled + timedelta(seconds=spec.starting_deadline_seconds) < now:
            await self._event(cj, "Warning", "MissSchedule", f"Missed scheduled time to start a job: "
                                                             f"{scheduled.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}")
            return self._until_next(schedule, now)
        name = job_name(cj.metadata.name, scheduled)
        if any(j.metadata.name == name for j in jobs):
            return self._until_next(schedule, now)
        if spec.concurrency_policy == "Forbid" and running:
            await self._event(cj, "Normal", "JobAlreadyActive", "Not starting job because prior execution is "
                                                                 "running and concurrency policy is Forbid")
            return self._until_next(schedule, now)
        if spec.concurrency_policy == "Replace":
            for job in running:
                await self._delete_job(cj, job)
            del status.active[:]
        try:
            job = await self.client.create(job_from_template(cj, name, scheduled))
        except AlreadyExists:
            return self._until_next(schedule, now)
        await self._event(cj, "Normal", "SuccessfulCreate", f"Created job {name}")
        status.active.append(reference(job))
        status.last_schedule_time.CopyFrom(_ts(scheduled))
        return self._until_next(schedule, now)

    def _until_next(self, schedule: cron.Schedule, now: datetime) -> float | None:
        t = schedule.next(now)
        return None if t is None else max(0.1, (t - now).total_seconds() + 0.1)

    async def _cleanup(self, cj: batch_pb2.CronJob, jobs: list[batch_pb2.Job]) -> None:
        """Finished Jobs beyond the history limits go, oldest first."""
        def start(j: batch_pb2.Job) -> float:
            return meta.seconds(j.status.start_time) or meta.seconds(j.metadata.creation_timestamp)
        for state, limit in (("Complete", cj.spec.successful_jobs_history_limit),
                             ("Failed", cj.spec.failed_jobs_history_limit)):
            done = sorted((j for j in jobs if finished(j) == state and not j.metadata.HasField("deletion_timestamp")),
                          key=start)
            for job in done[:max(0, len(done) - limit)]:
                await self._delete_job(cj, job)

    async def _delete_job(self, cj: batch_pb2.CronJob, job: batch_pb2.Job) -> None:
        try:
            await self.client.delete("Job", job.metadata.name, job.metadata.namespace,
                                     precondition_uid=job.metadata.uid, propagation_policy="Background")
        except (NotFound, Conflict):
            return
        await self._event(cj, "Normal", "SuccessfulDelete", f"Deleted job {job.metadata.name}")

    async def _event(self, obj: Message, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            await self.recorder.record(obj, type_=type_, reason=reason, message=message)
