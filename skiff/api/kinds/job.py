"""Job (batch/v1): pods run to completion (controlplane/controllers/job.py runs them).

Defaults as Kubernetes': parallelism 1, backoffLimit 6, completionMode
NonIndexed, suspend false, the pod defaults in the template except
restartPolicy, which a Job must name (OnFailure or Never). Unless
manualSelector is true, the selector is generated at creation from the new
uid (`batch.kubernetes.io/controller-uid`), and the template gets that label
and `batch.kubernetes.io/job-name` (and their legacy short forms), as
Kubernetes does. selector, template, completions and completionMode are
immutable.
"""
from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import batch_pb2
from skiff.api import describing, humanize, labelselector, meta, workload
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy
from skiff.api.validation import FieldError

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
COMPLETION_MODES = ("NonIndexed", "Indexed")
DEFAULT_BACKOFF_LIMIT = 6


class JobStrategy(Strategy):
    immutable_fields = ("spec.selector", "spec.template", "spec.completions", "spec.completionMode")

    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        spec = obj.spec
        if not spec.HasField("parallelism"):
            spec.parallelism = 1
        if not spec.HasField("backoff_limit"):
            spec.backoff_limit = DEFAULT_BACKOFF_LIMIT
        spec.completion_mode = spec.completion_mode or "NonIndexed"
        if not spec.HasField("suspend"):
            spec.suspend = False
        if not spec.HasField("manual_selector"):
            spec.manual_selector = False
        policy = spec.template.spec.restart_policy
        workload.default_template(spec.template)
        spec.template.spec.restart_policy = policy  # a Job's must be written: no default
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        spec = obj.spec
        errors = super().validate(obj)
        if spec.manual_selector or spec.HasField("selector") and not labelselector.is_empty(spec.selector):
            errors += workload.validate_selected_template(spec, kind="job", restart_policies=("OnFailure", "Never"))
        else:
            errors += [e for e in workload.validate_selected_template(spec, kind="job",
                                                                       restart_policies=("OnFailure", "Never"))
                       if not e.path.startswith("spec.selector") and e.path != "spec.template.metadata.labels"]
        if not spec.template.spec.restart_policy:
            errors.append(FieldError("spec.template.spec.restartPolicy",
                                     'Required value: valid values: "OnFailure", "Never"'))
        for field, json in (("parallelism", "parallelism"), ("completions", "completions"),
                            ("active_deadline_seconds", "activeDeadlineSeconds"), ("backoff_limit", "backoffLimit"),
                            ("ttl_seconds_after_finished", "ttlSecondsAfterFinished")):
            if spec.HasField(field) and getattr(spec, field) < 0:
                errors.append(FieldError(f"spec.{json}", f"Invalid value: {getattr(spec, field)}: "
                                                         f"must be greater than or equal to 0"))
        if spec.HasField("active_deadline_seconds") and spec.active_deadline_seconds == 0:
            errors.append(FieldError("spec.activeDeadlineSeconds", "Invalid value: 0: must be greater than 0"))
        if spec.completion_mode and spec.completion_mode not in COMPLETION_MODES:
            errors.append(FieldError("spec.completionMode", f'Unsupported value: "{spec.completion_mode}": '
                                                            f'supported values: "NonIndexed", "Indexed"'))
        if spec.completion_mode == "Indexed" and not spec.HasField("completions"):
            errors.append(FieldError("spec.completions", "Required value: when completion mode is Indexed"))
        return errors

    def prepare_create(self, obj: Message) -> Message:
        super().prepare_create(obj)
        obj.ClearField("status")
        if not obj.spec.manual_selector:
            uid, name = obj.metadata.uid, obj.metadata.name
            labels = obj.spec.template.metadata.labels
            labels.update({CONTROLLER_UID: uid, JOB_NAME: name, LEGACY_CONTROLLER_UID: uid, LEGACY_JOB_NAME: name})
            obj.spec.selector.Clear()
            obj.spec.selector.match_labels[CONTROLLER_UID] = uid
        return obj

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"] + (["CONTAINERS", "IMAGES", "SELECTOR"]
                                                                       if wide else [])

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        s = obj.status
        completions = f"{s.succeeded}/{obj.spec.completions}" if obj.spec.HasField("completions") else \
            f"{s.succeeded}/1 of {obj.spec.parallelism}"
        row = [obj.metadata.name, job_state(obj), completions, _duration(obj, now),
               humanize.age(obj.metadata.creation_timestamp, now=now)]
        return row + (workload.wide_columns(obj.spec.template, obj.spec.selector) if wide else [])

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        m, spec, s = obj.metadata, obj.spec, obj.status
        w = 17
        text.multiline("Name", m.name, width=w)
        text.multiline("Namespace", m.namespace, width=w)
        text.multiline("Selector", labelselector.to_text(spec.selector), width=w)
        text.multiline("Labels", describing.map_text(m.labels), width=w)
        text.multiline("Annotations", describing.map_text(m.annotations), width=w)
        text.multiline("Parallelism", str(spec.parallelism), width=w)
        text.multiline("Completions", str(spec.completions) if spec.HasField("completions") else "<unset>", width=w)
        text.multiline("Completion Mode", spec.completion_mode, width=w)
        text.multiline("Suspend", str(spec.suspend).lower(), width=w)
        text.multiline("Backoff Limit", str(spec.backoff_limit), width=w)
        if s.HasField("start_time"):
            text.multiline("Start Time", describing.ts(s.start_time), width=w)
        if s.HasField("completion_time"):
            text.multiline("Completed At", describing.ts(s.completion_time), width=w)
        text.multiline("Pods Statuses", f"{s.active} Active ({s.ready} Ready) / {s.succeeded} Succeeded / "
                                        f"{s.failed} Failed", width=w)
        if spec.completion_mode == "Indexed":
            text.multiline("Completed Indexes", s.completed_indexes or "<none>", width=w)
        workload.describe_template(text, spec.template)
        workload.conditions_table(text, s.conditions)
        describing.events(text, ctx.events, now=ctx.now)
        return str(text)


def job_state(job: Message) -> str:
    for cond in job.status.conditions:
        if cond.status == "True" and cond.type in ("Complete", "Failed", "Suspended"):
            return cond.type
    return "Running"


def _duration(job: Message, now: datetime) -> str:
    s = job.status
    if not s.HasField("start_time"):
        return ""
    end = meta.seconds(s.completion_time) if s.HasField("completion_time") else now.timestamp()
    return humanize.duration(int(end - meta.seconds(s.start_time)))


KIND = Kind("Job", "batch/v1", "jobs", "job", batch_pb2.Job, True, ("job",), strategy=JobStrategy())
