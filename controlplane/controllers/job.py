"""The Job controller: runs a Job's pods to completion (Kubernetes' `job_controller.go`).

    Job or its pods change ─► enqueue(job key) ─► reconcile:
        finished          ─► ttlSecondsAfterFinished: delete it (and its pods) when due
        claim pods (ownership.py; a generated selector matches the Job's uid)
        failed?           backoffLimit passed (failed pods, and container restarts
                          under OnFailure) or activeDeadlineSeconds passed
                          ─► delete active pods, Failed (BackoffLimitExceeded | DeadlineExceeded)
        complete?         completions succeeded (Indexed: every index 0..completions-1;
                          no completions: one succeeded and none active) ─► Complete
        suspended         ─► delete active pods, Suspended
        otherwise         keep min(parallelism, what is left) pods active: create in
                          slow-start batches, after a failure only when the Job back-off
                          (10 s doubling, at most 6 min) has passed
        status: active, ready, succeeded, failed, completedIndexes, startTime, completionTime

Indexed pods carry their index in the annotation
`batch.kubernetes.io/job-completion-index`, in $JOB_COMPLETION_INDEX and in
their hostname (`NAME-INDEX`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Iterable

from google.protobuf.message import Message

from controlplane.controllers import ownership, replicas
from controlplane.events import EventRecorder
from proto.skiff.v1 import batch_pb2, types_pb2
from skiff.api import labelselector, meta
from skiff.api.kinds.job import COMPLETION_INDEX
from skiff.client import ApiClient, ApiError, Conflict, NotFound
from skiff.controller import Controller, EventHandler, Key, SharedInformerFactory
from skiff.controller.lister import OWNER_INDEX

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 360.0


# ---------------------------------------------------------------- pure pieces

def finished(job: batch_pb2.Job) -> str | None:
    """"Complete" or "Failed" once the Job has ended, else None."""
    for cond in job.status.conditions:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return cond.type
    return None


def index_of(pod: types_pb2.Pod) -> int | None:
    try:
        return int(pod.metadata.annotations[COMPLETION_INDEX])
    except (KeyError, ValueError):
        return None


def format_indexes(indexes: Iterable[int]) -> str:
    """Kubernetes' compressed list: {0, 1, 2, 4} -> "0-2,4"."""
    out, run = [], []
    for i in sorted(set(indexes)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def backoff_delay(failures: int, *, base: float = BACKOFF_BASE_SECONDS, maximum: float = BACKOFF_MAX_SECONDS) -> float:
    """The wait before a new pod after `failures` failed ones (0: none)."""
    if failures <= 0:
        return 0.0
    return min(maximum, base * 2 ** (failures - 1))


def _finished_at(pod: types_pb2.Pod) -> float:
    times = [meta.seconds(c.state.terminated.finished_at) for c in pod.status.container_statuses
             if c.state.HasField("terminated")]
    cond = meta.get_condition(pod.status.conditions, "Ready")
    if cond is not None:
        times.append(meta.seconds(cond.last_transition_time))
    return max(times, default=meta.seconds(pod.metadata.creation_timestamp))


def set_condition(conditions, *, type_: str, status: str, reason: str, message: str, now: float) -> None:
    cond = meta.get_condition(conditions, type_)
    if cond is None:
        cond = conditions.add(type=type_)
    if cond.status != status or not cond.HasField("last_transition_time"):
        cond.last_transition_time.CopyFrom(meta.timestamp(now))
    cond.last_probe_time.CopyFrom(meta.timestamp(now))
    cond.status, cond.reason, cond.message = status, reason, message


# ---------------------------------------------------------------- controller

class JobController(ownership.OwnedPodEvents, Controller):
    name = "job"
    owner_kind = "Job"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory,
                 recorder: EventRecorder | None = None, clock: Callable[[], float] = time.time,
                 backoff_base: float = BACKOFF_BASE_SECONDS, workers: int = 2) -> None:
        super().__init__(recorder=recorder, metrics=factory.metrics, workers=workers)
        self.client = client
        self.clock = clock
        self.backoff_base = backoff_base
        self.expectations = replicas.Expectations()
        self.jobs = self.owners = self.watch(factory.informer("Job"))
        self.pods = self.uses(factory.informer("Pod"))
        self.pods.add_event_handler(EventHandler(on_add=self._pod_added, on_update=self._pod_updated,
                                                 on_delete=self._pod_deleted))

    # ------------------------------------------------------------ pod events

    def _updated_pod_owner(self, old: Message, new: Message) -> Key | None:
        # a pod the Job has just released still wakes it
        return self._owner_key(new) or self._owner_key(old)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: Key) -> float | None:
        cached = self.jobs.get(key)
        if cached is None:
            self.expectations.forget(key)
            return None
        job = meta.copy(cached)
        now = self.clock()
        if finished(job):
            return await self._expire(job, now)
        candidates = self.pods.lister.list(job.metadata.namespace)
        pods = await ownership.claim(self.client, job, candidates,
                                     labelselector.to_selector(job.spec.selector).matches)
        spec, status = job.spec, batch_pb2.JobStatus()
        status.CopyFrom(job.status)
        active = [p for p in pods if replicas.is_active(p)]
        failed_pods = [p for p in pods if p.status.phase == "Failed"]
        indexed = spec.completion_mode == "Indexed"
        if indexed:
            done_indexes = {i for p in pods if p.status.phase == "Succeeded" and (i := index_of(p)) is not None
                            and 0 <= i < spec.completions}
            succeeded = len(done_indexes)
            status.completed_indexes = format_indexes(done_indexes)
        else:
            done_indexes = set()
            succeeded = max(status.succeeded, sum(1 for p in pods if p.status.phase == "Succeeded"))
        failed = max(status.failed, len(failed_pods))
        restarts = sum(replicas_restarts(p) for p in active) if spec.template.spec.restart_policy == "OnFailure" else 0
        if not spec.suspend and not status.HasField("start_time"):
            status.start_time.CopyFrom(meta.timestamp(now))
        requeue: list[float] = []

        failure = None
        if failed + restarts > spec.backoff_limit:
            failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif spec.HasField("active_deadline_seconds") and status.HasField("start_time") and not spec.suspend:
            left = meta.seconds(status.start_time) + spec.active_deadline_seconds - now
            if left <= 0:
                failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
            else:
                requeue.append(left)

        if spec.HasField("completions"):
            complete = succeeded >= spec.completions
        else:
            complete = succeeded >= 1 and not active
        if failure is not None:
            failed += await self._delete_pods(key, job, active)
            active = []
            set_condition(status.conditions, type_="Failed", status="True", reason=failure[0], message=failure[1],
                          now=now)
            await self._event(job, "Warning", failure[0], failure[1])
        elif complete:
            await self._delete_pods(key, job, active)
            active = []
            set_condition(status.conditions, type_="Complete", status="True", reason="",
                          message="", now=now)
            status.completion_time.CopyFrom(meta.timestamp(now))
            await self._event(job, "Normal", "Completed", "Job completed")
        elif spec.suspend:
            if active:
                await self._delete_pods(key, job, active)
                active = []
            suspended = meta.get_condition(status.conditions, "Suspended")
            if suspended is None or suspended.status != "True":
                set_condition(status.conditions, type_="Suspended", status="True", reason="JobSuspended",
                              message="Job suspended", now=now)
                status.ClearField("start_time")
                await self._event(job, "Normal", "Suspended", "Job suspended")
        else:
            suspended = meta.get_condition(status.conditions, "Suspended")
            if suspended is not None and suspended.status == "True":
                set_condition(status.conditions, type_="Suspended", status="False", reason="JobResumed",
                              message="Job resumed", now=now)
                await self._event(job, "Normal", "Resumed", "Job resumed")
            if self.expectations.satisfied(key):
                wait = await self._manage(key, job, active, succeeded, done_indexes, failed_pods, failed, now)
                if wait is not None:
                    requeue.append(wait)
        status.active = len(active)
        status.ready = sum(1 for p in active if replicas.is_ready(p))
        status.succeeded, status.failed = succeeded, failed
        if status != job.status:
            job.status.CopyFrom(status)
            try:
                await self.client.update_status(job)
            except NotFound:
                return None
        if finished(job):
            return await self._expire(job, now)
        return min(requeue) if requeue else None

    async def _manage(self, key: Key, job: batch_pb2.Job, active: list[types_pb2.Pod], succeeded: int,
                      done_indexes: set[int], failed_pods: list[types_pb2.Pod], failed: int,
                      now: float) -> float | None:
        spec = job.spec
        if spec.completion_mode == "Indexed":
            by_index: dict[int, list[types_pb2.Pod]] = {}
            for p in active:
                by_index.setdefault(index_of(p) if index_of(p) is not None else -1, []).append(p)
            extra = [p for i, ps in by_index.items() for p in (ps if i < 0 or i >= spec.completions
                                                               or i in done_indexes else ps[1:])]
            if extra:
                await self._delete_pods(key, job, extra)
                return None
            pending = [i for i in range(spec.completions) if i not in done_indexes and i not in by_index]
            want = pending[:max(0, spec.parallelism - len(active))]
        else:
            if spec.HasField("completions"):
                target = min(spec.parallelism, spec.completions - succeeded)
            else:
                target = spec.parallelism if succeeded == 0 else len(active)
            diff = target - len(active)
            if diff < 0:
                await self._delete_pods(key, job, replicas.deletion_order(active)[:-diff])
                return None
            want = [None] * diff
        if not want:
            return None
        if failed_pods:
            last = max(_finished_at(p) for p in failed_pods)
            wait = last + backoff_delay(failed, base=self.backoff_base) - now
            if wait > 0:
                return wait
        self.expectations.expect(key, adds=len(want))
        queue = list(want)

        async def create() -> None:
            index = queue.pop(0)
            try:
                pod = await self.client.create(pod_for(job, index))
            except ApiError as exc:
                await self._event(job, "Warning", "FailedCreate", f"Error creating: {exc}")
                raise
            await self._event(job, "Normal", "SuccessfulCreate", f"Created pod: {pod.metadata.name}")

        created, error = await replicas.slow_start(len(want), create)
        if created < len(want):
            self.expectations.lower_adds(key, len(want) - created)
        if error is not None:
            raise error
        return None

    async def _delete_pods(self, key: Key, job: batch_pb2.Job, pods: list[types_pb2.Pod]) -> int:
        """Delete pods; returns how many were deleted (Kubernetes counts them as failed)."""
        if not pods:
            return 0
        self.expectations.expect(key, delete_uids=[p.metadata.uid for p in pods])

        async def delete(pod: types_pb2.Pod) -> int:
            try:
                await self.client.delete("Pod", pod.metadata.name, pod.metadata.namespace,
                                         precondition_uid=pod.metadata.uid)
            except (NotFound, Conflict):
                self.expectations.deletion_seen(key, pod.metadata.uid)
                return 0
            await self._event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")
            return 1
        return sum(await asyncio.gather(*(delete(p) for p in pods)))

    async def _expire(self, job: batch_pb2.Job, now: float) -> float | None:
        """ttlSecondsAfterFinished: delete the Job and its pods once it is due."""
        if not job.spec.HasField("ttl_seconds_after_finished"):
            return None
        ended = job.status.completion_time if job.status.HasField("completion_time") else next(
            (c.last_transition_time for c in job.status.conditions if c.type == "Failed"), None)
        if ended is None:
            return None
        left = meta.seconds(ended) + job.spec.ttl_seconds_after_finished - now
        if left > 0:
            return left
        for pod in self.pods.lister.by_index(OWNER_INDEX, job.metadata.uid):
            try:
                await self.client.delete("Pod", pod.metadata.name, pod.metadata.namespace,
                                         precondition_uid=pod.metadata.uid)
            except (NotFound, Conflict):
                pass
        try:
            await self.client.delete("Job", job.metadata.name, job.metadata.namespace,
                                     precondition_uid=job.metadata.uid)
            log.info("job %s: deleted %ds after it finished (ttlSecondsAfterFinished)", meta.namespaced_name(job),
                     job.spec.ttl_seconds_after_finished)
        except (NotFound, Conflict):
            pass
        return None

    async def _event(self, obj: Message, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            await self.recorder.record(obj, type_=type_, reason=reason, message=message)


def replicas_restarts(pod: types_pb2.Pod) -> int:
    return sum(c.restart_count for c in pod.status.container_statuses)


def pod_for(job: batch_pb2.Job, index: int | None) -> types_pb2.Pod:
    """A pod from the Job's template; an Indexed Job's carries its index."""
    template = job.spec.template
    pod = types_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.namespace = job.metadata.namespace
    pod.metadata.generate_name = f"{job.metadata.name}-" if index is None else f"{job.metadata.name}-{index}-"
    pod.metadata.labels.update(template.metadata.labels)
    pod.metadata.annotations.update(template.metadata.annotations)
    pod.metadata.owner_references.append(ownership.owner_reference(job))
    pod.spec.CopyFrom(template.spec)
    if index is not None:
        pod.metadata.annotations[COMPLETION_INDEX] = str(index)
        pod.metadata.labels[COMPLETION_INDEX] = str(index)
        pod.spec.hostname = pod.spec.hostname or f"{job.metadata.name}-{index}"
        for c in [*pod.spec.init_containers, *pod.spec.containers]:
            c.env.add(name="JOB_COMPLETION_INDEX", value=str(index))
    return pod
