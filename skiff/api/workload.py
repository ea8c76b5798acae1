"""What the workload kinds (ReplicaSet, Deployment; later DaemonSet, Job) share:
a selector over a pod template, its defaults and checks, and how printers and
`describe` show a template. Pure, used by their kind files (skiff/api/kinds/)."""
from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from proto.skiff.v1 import apps_pb2, types_pb2
from skiff.api import describing, labelselector
from skiff.api.kinds.pod import KIND as POD
from skiff.api.kinds.pod import validate_pod_spec
from skiff.api.validation import FieldError, validate_metadata


def default_template(template: apps_pb2.PodTemplateSpec) -> None:
    """The pod defaults, applied to the template (in place) as Kubernetes does,
    so a template read back equals one defaulted again (the pod-template-hash
    of a re-applied manifest stays the same)."""
    pod = types_pb2.Pod(spec=template.spec)
    POD.strategy.defaults(pod)
    template.spec.CopyFrom(pod.spec)


def validate_selected_template(spec: Any, *, path: str = "spec", kind: str,
                               restart_policies: tuple[str, ...] = ("Always",)) -> list[FieldError]:
    """spec.selector (required, valid, not empty), spec.template (a valid pod
    spec whose labels the selector matches) and spec.replicas >= 0 if it has one."""
    errors: list[FieldError] = []
    if "replicas" in type(spec).DESCRIPTOR.fields_by_name and spec.HasField("replicas") and spec.replicas < 0:
        errors.append(FieldError(f"{path}.replicas", f"Invalid value: {spec.replicas}: "
                                                     f"must be greater than or equal to 0"))
    if "min_ready_seconds" in type(spec).DESCRIPTOR.fields_by_name and spec.min_ready_seconds < 0:
        errors.append(FieldError(f"{path}.minReadySeconds", f"Invalid value: {spec.min_ready_seconds}: "
                                                            f"must be greater than or equal to 0"))
    if not spec.HasField("selector"):
        errors.append(FieldError(f"{path}.selector", "Required value"))
    elif labelselector.is_empty(spec.selector):
        errors.append(FieldError(f"{path}.selector", f"Invalid value: empty selector is invalid for {kind}"))
    else:
        selector_errors = labelselector.validate(spec.selector, f"{path}.selector")
        errors += selector_errors
        labels = spec.template.metadata.labels
        if not selector_errors and not labelselector.matches(spec.selector, labels):
            shown = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"
            errors.append(FieldError(f"{path}.template.metadata.labels",
                                     f"Invalid value: {shown!r}: `selector` does not match template `labels`"))
    holder = types_pb2.Pod()
    holder.metadata.name = "template"
    holder.metadata.labels.update(spec.template.metadata.labels)
    holder.metadata.annotations.update(spec.template.metadata.annotations)
    errors += [FieldError(f"{path}.template.{e.path}", e.message) for e in validate_metadata(holder)
               if e.path.startswith("metadata.labels") or e.path.startswith("metadata.annotations")]
    errors += validate_pod_spec(spec.template.spec, f"{path}.template.spec")
    policy = spec.template.spec.restart_policy
    if policy and policy not in restart_policies:
        supported = ", ".join(f'"{p}"' for p in restart_policies)
        errors.append(FieldError(f"{path}.template.spec.restartPolicy",
                                 f'Unsupported value: "{policy}": supported values: {supported}'))
    return errors


def wide_columns(template: apps_pb2.PodTemplateSpec, selector: apps_pb2.LabelSelector) -> list[str]:
    """CONTAINERS, IMAGES, SELECTOR as `get -o wide` prints them."""
    containers = template.spec.containers
    return [",".join(c.name for c in containers) or "<none>", ",".join(c.image for c in containers) or "<none>",
            labelselector.to_text(selector)]


def describe_template(text: describing.Text, template: apps_pb2.PodTemplateSpec) -> None:
    """kubectl's "Pod Template:" block."""
    text.line("Pod Template:")
    text.kv(2, [("Labels", describing.map_text(template.metadata.labels).replace("\n", "\n" + " " * 11))])
    if template.metadata.annotations:
        text.kv(2, [("Annotations", describing.map_text(template.metadata.annotations)
                     .replace("\n", "\n" + " " * 16))])
    text.line("  Containers:")
    for c in template.spec.containers:
        text.line(f"   {c.name}:")
        ports = ", ".join(f"{p.container_port}/{p.protocol or 'TCP'}" for p in c.ports) or "<none>"
        pairs = [("Image", c.image), ("Port", ports)]
        if c.command:
            pairs.append(("Command", " ".join(c.command)))
        if c.args:
            pairs.append(("Args", " ".join(c.args)))
        pairs.append(("Environment", ", ".join(f"{e.name}={e.value}" for e in c.env) or "<none>"))
        pairs.append(("Mounts", ", ".join(f"{m.mount_path} from {m.name}" for m in c.volume_mounts) or "<none>"))
        text.kv(4, pairs, width=12)
    text.kv(2, [("Volumes", ", ".join(v.name for v in template.spec.volumes) or "<none>")], width=14)


def conditions_table(text: describing.Text, conditions: Any) -> None:
    if not conditions:
        return
    text.line("Conditions:")
    rows = [["Type", "Status", "Reason"], ["----", "------", "------"]]
    rows += [[c.type, c.status, c.reason] for c in conditions]
    text.table(rows)


def owned(obj: Message, items: list[Message]) -> list[Message]:
    """The items whose controller ownerReference is obj."""
    return [i for i in items
            if any(ref.controller and ref.uid == obj.metadata.uid for ref in i.metadata.owner_references)]
