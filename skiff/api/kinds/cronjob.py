"""CronJob (batch/v1): a Job made from jobTemplate at each time of a cron
schedule (controlplane/controllers/cronjob.py makes them).

Defaults as Kubernetes': concurrencyPolicy Allow, suspend false, 3
successful and 1 failed finished Jobs kept. Checks: the schedule parses
(skiff/api/cron.py: five fields or a macro; the field and value named), the
timeZone exists, concurrencyPolicy is Allow, Forbid or Replace, the job
template's pods restart OnFailure or Never, the name leaves room for the
Jobs' suffix (52 characters at most).
"""
from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import batch_pb2
from skiff.api import cron, describing, humanize, workload
from skiff.api.kinds.pod import validate_pod_spec
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy
from skiff.api.validation import FieldError

POLICIES = ("Allow", "Forbid", "Replace")
MAX_NAME = 52


class CronJobStrategy(Strategy):
    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        spec = obj.spec
        spec.concurrency_policy = spec.concurrency_policy or "Allow"
        if not spec.HasField("suspend"):
            spec.suspend = False
        if not spec.HasField("successful_jobs_history_limit"):
            spec.successful_jobs_history_limit = 3
        if not spec.HasField("failed_jobs_history_limit"):
            spec.failed_jobs_history_limit = 1
        template = spec.job_template.spec.template
        policy = template.spec.restart_policy
        workload.default_template(template)
        template.spec.restart_policy = policy  # a Job's must be written: no default
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        spec = obj.spec
        errors = super().validate(obj)
        if len(obj.metadata.name) > MAX_NAME:
            errors.append(FieldError("metadata.name", f"Invalid value: {obj.metadata.name!r}: must be no more "
                                                      f"than {MAX_NAME} characters"))
        if not spec.schedule:
            errors.append(FieldError("spec.schedule", "Required value"))
        else:
            try:
                cron.parse(spec.schedule)
            except cron.CronError as exc:
                errors.append(FieldError("spec.schedule", f'Invalid value: "{spec.schedule}": {exc}'))
        if spec.HasField("time_zone"):
            try:
                cron.zone(spec.time_zone) if spec.time_zone else None
            except cron.CronError as exc:
                errors.append(FieldError("spec.timeZone", f'Invalid value: "{spec.time_zone}": {exc}'))
            if not spec.time_zone:
                errors.append(FieldError("spec.timeZone", 'Invalid value: "": unknown time zone'))
        if spec.concurrency_policy and spec.concurrency_policy not in POLICIES:
            errors.append(FieldError("spec.concurrencyPolicy", f'Unsupported value: "{spec.concurrency_policy}": '
                                                               f'supported values: "Allow", "Forbid", "Replace"'))
        for field, json in (("starting_deadline_seconds", "startingDeadlineSeconds"),
                            ("successful_jobs_history_limit", "successfulJobsHistoryLimit"),
                            ("failed_jobs_history_limit", "failedJobsHistoryLimit")):
            if spec.HasField(field) and getattr(spec, field) < 0:
                errors.append(FieldError(f"spec.{json}", f"Invalid value: {getattr(spec, field)}: "
                                                         f"must be greater than or equal to 0"))
        pod_path = "spec.jobTemplate.spec.template.spec"
        pod = spec.job_template.spec.template.spec
        errors += validate_pod_spec(pod, pod_path)
        if pod.restart_policy not in ("OnFailure", "Never"):
            errors.append(FieldError(f"{pod_path}.restartPolicy",
                                     f'Unsupported value: "{pod.restart_policy}": supported values: '
                                     f'"OnFailure", "Never"' if pod.restart_policy else
                                     'Required value: valid values: "OnFailure", "Never"'))
        return errors

    def prepare_create(self, obj: Message) -> Message:
        super().prepare_create(obj)
        obj.ClearField("status")
        return obj

    def columns(self, *, wide: bool) -> list[str]:
        return (["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"]
                + (["CONTAINERS", "IMAGES", "SELECTOR"] if wide else []))

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        spec, s = obj.spec, obj.status
        last = humanize.age(s.last_schedule_time, now=now) if s.HasField("last_schedule_time") else "<none>"
        row = [obj.metadata.name, spec.schedule, spec.time_zone or "<none>", str(spec.suspend), str(len(s.active)),
               last, humanize.age(obj.metadata.creation_timestamp, now=now)]
        job = spec.job_template.spec
        return row + (workload.wide_columns(job.template, job.selector) if wide else [])

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        m, spec, s = obj.metadata, obj.spec, obj.status
        w = 30
        text.multiline("Name", m.name, width=w)
        text.multiline("Namespace", m.namespace, width=w)
        text.multiline("Labels", describing.map_text(m.labels), width=w)
        text.multiline("Annotations", describing.map_text(m.annotations), width=w)
        text.multiline("Schedule", spec.schedule, width=w)
        text.multiline("Time Zone", spec.time_zone or "<unset>", width=w)
        text.multiline("Concurrency Policy", spec.concurrency_policy, width=w)
        text.multiline("Suspend", str(spec.suspend), width=w)
        text.multiline("Successful Job History Limit", str(spec.successful_jobs_history_limit), width=w)
        text.multiline("Failed Job History Limit", str(spec.failed_jobs_history_limit), width=w)
        text.multiline("Starting Deadline Seconds", f"{spec.starting_deadline_seconds}s"
                       if spec.HasField("starting_deadline_seconds") else "<unset>", width=w)
        workload.describe_template(text, spec.job_template.spec.template)
        text.multiline("Last Schedule Time", describing.ts(s.last_schedule_time), width=w)
        text.multiline("Active Jobs", ", ".join(r.name for r in s.active) or "<none>", width=w)
        describing.events(text, ctx.events, now=ctx.now)
        return str(text)


KIND = Kind("CronJob", "batch/v1", "cronjobs", "cron_job", batch_pb2.CronJob, True, ("cronjob", "cj"),
            strategy=CronJobStrategy())
