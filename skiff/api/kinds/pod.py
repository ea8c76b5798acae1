"""Pod (v1): the kind's rules in one place (see strategy.py for the shape).

Defaults and validation as Kubernetes' (restartPolicy Always, 30 s grace,
the default scheduler, TCP ports); a new pod's status is the server's
(phase Pending); an update may change only container images and the grace
period, and a bound pod never moves; `bind` assigns a node; deleting a bound
pod only marks it (deletionTimestamp + grace) for its agent, which stops the
containers and then deletes it with grace 0. The printer is kubectl's
printPod: a waiting or terminated container's reason wins over the phase.
"""
from __future__ import annotations

import ipaddress
import re
import time
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from proto.skiff.v1 import types_pb2
from skiff.api import capabilities, describing, humanize, imageref, meta
from skiff.api.kinds import pod_features
from skiff.api.kinds.strategy import DescribeContext, FieldGetter, Kind, Strategy, getter
from skiff.api.quantity import QuantityError, cpu_millis, memory_bytes, parse_quantity
from skiff.api.validation import (MAX_DURATION_SECONDS, FieldError, dns1123_label_error, dns1123_subdomain_error, invalid_value,
                                  label_value_error, qualified_name_error, quoted)

DEFAULT_GRACE_SECONDS = 30
DEFAULT_SCHEDULER = "default-scheduler"
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
                   "BlockDevice")
SECCOMP_TYPES = ("RuntimeDefault", "Unconfined", "Localhost")
MAX_ID = 2**31 - 1   # Kubernetes' user and group ids: 0 to MaxInt32
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
# Skiff's defaults for a small cluster (docs/architecture.md decision 23);
# Kubernetes' DefaultTolerationSeconds admission uses 300 s for both.
DEFAULT_TOLERATION_SECONDS = 5


def add_default_tolerations(spec: types_pb2.PodSpec, *, not_ready_seconds: int = DEFAULT_TOLERATION_SECONDS,
                            unreachable_seconds: int = DEFAULT_TOLERATION_SECONDS,
                            like: types_pb2.PodSpec | None = None) -> None:
    """Kubernetes' DefaultTolerationSeconds admission: a pod that does not
    already tolerate node.kubernetes.io/not-ready (unreachable) with effect
    NoExecute gets `Exists, NoExecute, tolerationSeconds` for it, so the
    taint-eviction controller moves it off a failed node after that long.
    With `like` (the stored pod, at an update): only the tolerations it has."""
    for key, seconds in ((NOT_READY_TAINT, not_ready_seconds), (UNREACHABLE_TAINT, unreachable_seconds)):
        if any((t.key in (key, "") and t.effect in ("NoExecute", "")) for t in spec.tolerations):
            continue
        if like is None:
            spec.tolerations.add(key=key, operator="Exists", effect="NoExecute", toleration_seconds=seconds)
        else:
            spec.tolerations.extend(t for t in like.tolerations if t.key == key and t.effect == "NoExecute")


class PodStrategy(Strategy):
    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        spec = obj.spec
        spec.restart_policy = spec.restart_policy or "Always"
        spec.scheduler_name = spec.scheduler_name or DEFAULT_SCHEDULER
        if not spec.HasField("termination_grace_period_seconds"):
            spec.termination_grace_period_seconds = DEFAULT_GRACE_SECONDS
        for container in list(spec.init_containers) + list(spec.containers):
            for port in container.ports:
                port.protocol = port.protocol or "TCP"
        pod_features.set_defaults(spec)
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        return super().validate(obj) + validate_pod_spec(obj.spec, "spec")

    def validate_status(self, obj: Message) -> list[FieldError]:
        # The spec is the stored one (prepare_status_update), validated when it was written: a
        # node's status write (two or more a pod started) need not walk it again, nor fail on a
        # rule newer than the pod.
        return super().validate(obj)

    def warnings(self, obj: Message) -> list[str]:
        return pod_features.unimplemented_warnings(obj.spec, "spec")

    def required(self, obj: Message) -> list[FieldError]:
        errors = []
        if not obj.spec.containers:
            errors.append(FieldError("spec.containers", "required: a Pod needs at least one container"))
        for i, c in enumerate(obj.spec.containers):
            errors += [FieldError(f"spec.containers[{i}].{key}", "required") for key in ("name", "image")
                       if not getattr(c, key)]
        return errors

    def prepare_create(self, obj: Message) -> Message:
        super().prepare_create(obj)
        # As in Kubernetes, a new pod's status is the server's, not the user's.
        obj.ClearField("status")
        obj.status.phase = "Pending"
        return obj

    def prepare_apply(self, old: Message, new: Message) -> Message:
        # A manifest never names the node the scheduler chose: applying it again keeps the binding.
        if not new.spec.node_name:
            new = meta.copy(new)
            new.spec.node_name = old.spec.node_name
        return self.prepare_update(old, new)

    def validate_update(self, old: Message, new: Message) -> list[FieldError]:
        if new.spec.node_name != old.spec.node_name and old.spec.node_name:
            return [FieldError("spec.nodeName", f"Forbidden: a bound pod cannot be moved "
                                                f"(bound to {old.spec.node_name!r})")]
        if _mutable_spec_view(new.spec) != _mutable_spec_view(old.spec):
            return [FieldError("spec", "Forbidden: pod updates may not change fields other than "
                                       "spec.containers[*].image, spec.initContainers[*].image and "
                                       "spec.terminationGracePeriodSeconds; delete the pod and create it again")]
        return super().validate_update(old, new)

    def bind(self, obj: Message, node_name: str) -> Message:
        """Pod's own operation (pods/binding); raises BindError."""
        return bind(obj, node_name)

    def on_delete(self, obj: Message, grace_seconds: int | None) -> Message | None:
        if not obj.spec.node_name or grace_seconds == 0:
            return None  # nothing runs it (or its agent confirms the stop): remove now
        return mark_for_deletion(obj, grace_seconds) or obj

    @property
    def field_selectors(self) -> dict[str, FieldGetter]:
        return {**super().field_selectors,
                "spec.nodeName": getter("spec", "node_name"),
                "spec.restartPolicy": getter("spec", "restart_policy"),
                "spec.schedulerName": getter("spec", "scheduler_name"),
                "status.phase": getter("status", "phase")}

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (["IP", "NODE"] if wide else [])

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        return ([obj.metadata.name, pod_ready(obj), pod_status(obj), str(pod_restarts(obj)),
                 humanize.age(obj.metadata.creation_timestamp, now=now)]
                + ([obj.status.pod_ip or "<none>", obj.spec.node_name or "<none>"] if wide else []))

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        return describe_pod(obj, ctx)


KIND = Kind("Pod", "v1", "pods", "pod", types_pb2.Pod, True, ("pod", "po"), strategy=PodStrategy())


# ---------------------------------------------------------------- operations

class BindError(ValueError):
    """A bind Kubernetes answers with 409: the pod is bound already or being deleted."""


def bind(pod: types_pb2.Pod, node_name: str) -> types_pb2.Pod:
    """The pod bound to `node_name`, with condition PodScheduled=True."""
    if pod.spec.node_name:
        raise BindError(f'pod "{pod.metadata.name}" is already assigned to node "{pod.spec.node_name}"')
    if pod.metadata.HasField("deletion_timestamp"):
        raise BindError(f'pod "{pod.metadata.name}" is being deleted; cannot bind it')
    bound = meta.copy(pod)
    bound.spec.node_name = node_name
    meta.set_condition(bound.status.conditions, type_="PodScheduled", status="True")
    return bound


def mark_for_deletion(pod: types_pb2.Pod, grace_seconds: int | None) -> types_pb2.Pod | None:
    """A bound pod being deleted gracefully: deletionTimestamp + grace period,
    for its agent to stop the containers and then remove it. None when the
    mark is already there and would not get shorter."""
    grace = grace_seconds if grace_seconds is not None else (
        pod.spec.termination_grace_period_seconds if pod.spec.HasField("termination_grace_period_seconds")
        else DEFAULT_GRACE_SECONDS)
    if pod.metadata.HasField("deletion_timestamp") and pod.metadata.deletion_grace_period_seconds <= grace:
        return None
    marked = meta.copy(pod)
    # As Kubernetes: the timestamp is when the grace period ends.
    marked.metadata.deletion_timestamp.CopyFrom(meta.timestamp(time.time() + grace))
    marked.metadata.deletion_grace_period_seconds = grace
    return marked


def _mutable_spec_view(spec: types_pb2.PodSpec) -> types_pb2.PodSpec:
    """The spec with the fields Kubernetes lets an update change blanked out."""
    view = types_pb2.PodSpec()
    view.CopyFrom(spec)
    for container in list(view.containers) + list(view.init_containers):
        container.image = ""
    view.ClearField("termination_grace_period_seconds")
    view.node_name = ""  # set by Bind, checked separately
    return view


# ---------------------------------------------------------------- validation

def _validate_resources(res: types_pb2.ResourceRequirements, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for section in ("limits", "requests"):
        for name, value in getattr(res, section).items():
            where = f"{path}.{section}.{name}"
            try:
                if name == "cpu":
                    cpu_millis(value)
                elif name == "memory":
                    memory_bytes(value)
                else:
                    parse_quantity(value)
            except QuantityError as exc:
                errors.append(FieldError(where, str(exc)))
    for name, request in res.requests.items():
        limit = res.limits.get(name)
        if limit is None:
            continue
        try:
            if parse_quantity(request) > parse_quantity(limit):
                errors.append(FieldError(f"{path}.requests.{name}",
                                         f"{request!r} must be less than or equal to the {name} limit {limit!r}"))
        except QuantityError:
            pass  # already reported above
    return errors


def _validate_container(c: types_pb2.Container, path: str, volumes: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    if problem := dns1123_label_error(c.name):
        errors.append(FieldError(f"{path}.name", problem))
    if not c.image.strip():
        errors.append(FieldError(f"{path}.image", "required"))
    else:
        try:
            imageref.parse_reference(c.image)
        except imageref.InvalidReference as exc:
            detail = str(exc).rsplit("': ", 1)[-1] if "': " in str(exc) else "invalid reference format"
            errors.append(FieldError(f"{path}.image", invalid_value(
                c.image, f"not an image reference ([registry/]name[:tag][@sha256:digest]): {detail}")))
    for name, values in (("command", c.command), ("args", c.args)):
        errors += [FieldError(f"{path}.{name}[{i}]", _NUL) for i, v in enumerate(values) if "\0" in v]
    if "\0" in c.working_dir:
        errors.append(FieldError(f"{path}.workingDir", _NUL))
    if c.image_pull_policy and c.image_pull_policy not in PULL_POLICIES:
        errors.append(FieldError(f"{path}.imagePullPolicy",
                                 f"unsupported value {c.image_pull_policy!r}: supported values: "
                                 f"{', '.join(PULL_POLICIES)}"))
    port_names: set[str] = set()
    for i, port in enumerate(c.ports):
        where = f"{path}.ports[{i}]"
        if not 1 <= port.container_port <= 65535:
            errors.append(FieldError(f"{where}.containerPort",
                                     f"{port.container_port}: must be between 1 and 65535, inclusive"))
        if port.host_port and not 1 <= port.host_port <= 65535:
            errors.append(FieldError(f"{where}.hostPort", f"{port.host_port}: must be between 1 and 65535, inclusive"))
        if port.host_ip and not _is_ip(port.host_ip):
            errors.append(FieldError(f"{where}.hostIP", invalid_value(port.host_ip, "must be a valid IP address")))
        if port.protocol and port.protocol not in PROTOCOLS:
            errors.append(FieldError(f"{where}.protocol",
                                     f"unsupported value {port.protocol!r}: supported values: {', '.join(PROTOCOLS)}"))
        if port.name:
            if port.name in port_names:
                errors.append(FieldError(f"{where}.name", f"duplicate value {port.name!r}"))
            port_names.add(port.name)
    for i, env in enumerate(c.env):
        if not env.name or not _ENV_NAME.match(env.name):
            errors.append(FieldError(f"{path}.env[{i}].name",
                                     f"{env.name!r}: a valid environment variable name must consist of "
                                     f"alphabetic characters, digits, '_', '-', or '.', and must not start with a digit"
                                     if env.name else "required"))
        if "\0" in env.value:
            errors.append(FieldError(f"{path}.env[{i}].value", _NUL))
    errors += _validate_resources(c.resources, f"{path}.resources")
    mount_paths: set[str] = set()
    for i, mount in enumerate(c.volume_mounts):
        where = f"{path}.volumeMounts[{i}]"
        if not mount.name:
            errors.append(FieldError(f"{where}.name", "required"))
        elif mount.name not in volumes:
            errors.append(FieldError(f"{where}.name", f"not found: no volume named {mount.name!r} in spec.volumes"))
        if not mount.mount_path:
            errors.append(FieldError(f"{where}.mountPath", "required"))
        elif not mount.mount_path.startswith("/"):
            errors.append(FieldError(f"{where}.mountPath", f"{mount.mount_path!r}: must be an absolute path"))
        elif problem := _path_problem(mount.mount_path):
            errors.append(FieldError(f"{where}.mountPath", invalid_value(mount.mount_path, problem)))
        elif mount.mount_path in mount_paths:
            errors.append(FieldError(f"{where}.mountPath", f"{mount.mount_path!r}: must be unique"))
        mount_paths.add(mount.mount_path)
        if mount.sub_path and (mount.sub_path.startswith("/") or _path_problem(mount.sub_path)):
            errors.append(FieldError(f"{where}.subPath", f"{mount.sub_path!r}: must be a relative path without '..'"))
    if c.HasField("security_context"):
        errors += _validate_security_context(c.security_context, f"{path}.securityContext")
    return errors


_NUL = "must not contain a NUL byte"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _path_problem(path: str) -> str | None:
    if "\0" in path:
        return _NUL
    if ".." in path.split("/"):
        return "must not contain '..'"
    return None


def _id_errors(value: int, path: str) -> list[FieldError]:
    if not 0 <= value <= MAX_ID:
        return [FieldError(path, f"Invalid value: {value}: must be between 0 and {MAX_ID}, inclusive")]
    return []


def _seccomp_errors(sc: Message, path: str) -> list[FieldError]:
    if not sc.HasField("seccomp_profile"):
        return []
    kind = sc.seccomp_profile.type
    if kind not in SECCOMP_TYPES:
        return [FieldError(f"{path}.seccompProfile.type", f"Unsupported value: {quoted(kind)}: "
                                                          f"supported values: {', '.join(SECCOMP_TYPES)}")]
    if kind == "Localhost":   # Kubernetes needs localhostProfile, a field Skiff does not have
        return [FieldError(f"{path}.seccompProfile.localhostProfile",
                           "Required value: must be set when seccomp type is Localhost (Skiff supports "
                           "RuntimeDefault and Unconfined only)")]
    return []


def _validate_security_context(sc: types_pb2.SecurityContext, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for field, name in (("run_as_user", "runAsUser"), ("run_as_group", "runAsGroup")):
        if sc.HasField(field):
            errors += _id_errors(getattr(sc, field), f"{path}.{name}")
    for name in ("add", "drop"):
        for i, cap in enumerate(getattr(sc.capabilities, name)):
            if not capabilities.is_known(cap):
                errors.append(FieldError(f"{path}.capabilities.{name}[{i}]",
                                         invalid_value(cap, "not a Linux capability (e.g. NET_ADMIN or "
                                                            "CAP_NET_ADMIN, or ALL)")))
    return errors + _seccomp_errors(sc, path)


def _validate_pod_security_context(sc: types_pb2.PodSecurityContext, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for field, name in (("run_as_user", "runAsUser"), ("run_as_group", "runAsGroup"), ("fs_group", "fsGroup")):
        if sc.HasField(field):
            errors += _id_errors(getattr(sc, field), f"{path}.{name}")
    for i, gid in enumerate(sc.supplemental_groups):
        errors += _id_errors(gid, f"{path}.supplementalGroups[{i}]")
    return errors + _seccomp_errors(sc, path)


def validate_pod_spec(spec: types_pb2.PodSpec, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    volumes: set[str] = set()
    for i, volume in enumerate(spec.volumes):
        where = f"{path}.volumes[{i}]"
        if problem := dns1123_label_error(volume.name):
            errors.append(FieldError(f"{where}.name", problem))
        elif volume.name in volumes:
            errors.append(FieldError(f"{where}.name", f"duplicate value {volume.name!r}"))
        volumes.add(volume.name)
        sources = [s for s in ("empty_dir", "host_path") if volume.HasField(s)]
        if len(sources) > 1:
            errors.append(FieldError(where, "may not specify more than 1 volume type"))
        if volume.HasField("host_path"):
            if not volume.host_path.path.startswith("/"):
                errors.append(FieldError(f"{where}.hostPath.path", "must be an absolute path"))
            elif problem := _path_problem(volume.host_path.path):
                errors.append(FieldError(f"{where}.hostPath.path", invalid_value(volume.host_path.path, problem)))
            if volume.host_path.type not in HOST_PATH_TYPES:
                errors.append(FieldError(f"{where}.hostPath.type",
                                         f"Unsupported value: {quoted(volume.host_path.type)}: "
                                         f"supported values: {', '.join(t for t in HOST_PATH_TYPES if t)}"))
        if volume.HasField("empty_dir"):
            if volume.empty_dir.medium not in ("", "Memory"):
                errors.append(FieldError(f"{where}.emptyDir.medium",
                                         f"unsupported value {volume.empty_dir.medium!r}: supported values: \"\", Memory"))
            if volume.empty_dir.size_limit:
                try:
                    memory_bytes(volume.empty_dir.size_limit)
                except QuantityError as exc:
                    errors.append(FieldError(f"{where}.emptyDir.sizeLimit", str(exc)))
    if not spec.containers:
        errors.append(FieldError(f"{path}.containers", "required: a pod needs at least one container"))
    names: set[str] = set()
    for field, label in (("init_containers", "initContainers"), ("containers", "containers")):
        for i, container in enumerate(getattr(spec, field)):
            where = f"{path}.{label}[{i}]"
            errors += _validate_container(container, where, volumes)
            if container.name and container.name in names:
                errors.append(FieldError(f"{where}.name", f"duplicate value {container.name!r}"))
            names.add(container.name)
    if spec.restart_policy and spec.restart_policy not in RESTART_POLICIES:
        errors.append(FieldError(f"{path}.restartPolicy",
                                 f"unsupported value {spec.restart_policy!r}: supported values: "
                                 f"{', '.join(RESTART_POLICIES)}"))
    if spec.HasField("termination_grace_period_seconds"):
        grace = spec.termination_grace_period_seconds
        if grace < 0:
            errors.append(FieldError(f"{path}.terminationGracePeriodSeconds", "must be greater than or equal to 0"))
        elif grace > MAX_DURATION_SECONDS:
            errors.append(FieldError(f"{path}.terminationGracePeriodSeconds",
                                     f"Invalid value: {grace}: must be at most {MAX_DURATION_SECONDS} seconds"))
    if spec.node_name and (problem := dns1123_subdomain_error(spec.node_name)):
        errors.append(FieldError(f"{path}.nodeName", problem))
    for key, value in spec.node_selector.items():
        if problem := qualified_name_error(key):
            errors.append(FieldError(f"{path}.nodeSelector", invalid_value(key, problem)))
        elif problem := label_value_error(value):
            errors.append(FieldError(f"{path}.nodeSelector.{key}", invalid_value(value, problem)))
    if spec.HasField("security_context"):
        errors += _validate_pod_security_context(spec.security_context, f"{path}.securityContext")
    if spec.hostname and (problem := dns1123_label_error(spec.hostname)):
        errors.append(FieldError(f"{path}.hostname", problem))
    return errors + pod_features.validate_features(spec, path)


# ---------------------------------------------------------------- printing

def pod_status(pod: Message) -> str:
    """The STATUS column of `kubectl get pods` (kubectl's printPod, abridged)."""
    reason = pod.status.reason or pod.status.phase or "Pending"
    initializing = False
    for i, c in enumerate(pod.status.init_container_statuses):
        state = c.state
        if state.HasField("terminated") and state.terminated.exit_code == 0:
            continue
        if c.started and c.name in pod_features.sidecar_names(pod.spec):   # kubectl: a started sidecar is done
            continue
        initializing = True
        if state.HasField("terminated"):
            t = state.terminated
            reason = "Init:" + (t.reason or (f"Signal:{t.signal}" if t.signal else f"ExitCode:{t.exit_code}"))
        elif state.HasField("waiting") and state.waiting.reason and state.waiting.reason != "PodInitializing":
            reason = "Init:" + state.waiting.reason
        else:
            reason = f"Init:{i}/{len(pod.spec.init_containers)}"
        break
    if not initializing:
        has_running = False
        for c in reversed(pod.status.container_statuses):
            state = c.state
            if state.HasField("waiting") and state.waiting.reason:
                reason = state.waiting.reason
            elif state.HasField("terminated") and state.terminated.reason:
                reason = state.terminated.reason
            elif state.HasField("terminated"):
                t = state.terminated
                reason = f"Signal:{t.signal}" if t.signal else f"ExitCode:{t.exit_code}"
            elif c.ready and state.HasField("running"):
                has_running = True
        # A finished sidecar beside a running container: the pod is still Running.
        if reason == "Completed" and has_running:
            reason = "Running"
    if pod.metadata.HasField("deletion_timestamp"):
        reason = "Terminating"
    return reason


def pod_ready(pod: Message) -> str:
    sidecars = pod_features.sidecar_names(pod.spec)   # counted as kubectl counts them
    statuses = list(pod.status.container_statuses) + [c for c in pod.status.init_container_statuses
                                                      if c.name in sidecars]
    ready = sum(1 for c in statuses if c.ready and c.state.HasField("running"))
    return f"{ready}/{len(pod.spec.containers) + len(sidecars)}"


def pod_restarts(pod: Message) -> int:
    return sum(c.restart_count for c in pod.status.container_statuses)


# ---------------------------------------------------------------- describe

_CW = 15  # the key width of a container's block in describe pod


def _state(text: describing.Text, title: str, state: Any) -> None:
    if state.HasField("running"):
        text.kv(4, [(title, "Running"), ("  Started", describing.ts(state.running.started_at))], width=_CW)
    elif state.HasField("terminated"):
        t = state.terminated
        pairs = [(title, "Terminated"), ("  Reason", t.reason or "<none>"), ("  Exit Code", t.exit_code)]
        if t.signal:
            pairs.append(("  Signal", t.signal))
        if t.message:
            pairs.append(("  Message", t.message))
        pairs += [("  Started", describing.ts(t.started_at)), ("  Finished", describing.ts(t.finished_at))]
        text.kv(4, pairs, width=_CW)
    elif state.HasField("waiting"):
        pairs = [(title, "Waiting"), ("  Reason", state.waiting.reason or "<none>")]
        if state.waiting.message:
            pairs.append(("  Message", state.waiting.message))
        text.kv(4, pairs, width=_CW)
    else:
        text.kv(4, [(title, "Waiting")], width=_CW)


def describe_pod(pod: Message, ctx: DescribeContext) -> str:
    text = describing.Text()
    meta, spec, status = pod.metadata, pod.spec, pod.status
    node = spec.node_name + (f"/{status.host_ip}" if status.host_ip else "") if spec.node_name else "<none>"
    text.multiline("Name", meta.name)
    text.multiline("Namespace", meta.namespace or "default")
    text.multiline("Node", node)
    text.multiline("Start Time", describing.ts(status.start_time) if status.HasField("start_time") else "<none>")
    text.multiline("Labels", describing.map_text(meta.labels))
    text.multiline("Annotations", describing.map_text(meta.annotations))
    text.multiline("Status", pod_status(pod) if meta.HasField("deletion_timestamp")
                   else status.phase or "Pending")
    if status.reason or status.message:
        text.multiline("Reason", status.reason)
        text.multiline("Message", status.message)
    text.multiline("IP", status.pod_ip or "<none>")
    text.multiline("Restart Policy", spec.restart_policy or "Always")
    statuses = {c.name: c for c in status.container_statuses}
    text.line("Containers:")
    for c in spec.containers:
        text.line(f"  {c.name}:")
        cs = statuses.get(c.name)
        text.kv(4, width=_CW, pairs=[("Container ID", (cs.container_id if cs else "") or "<none>"), ("Image", c.image),
                    ("Image ID", (cs.image_id if cs else "") or "<none>"),
                    ("Ports", ", ".join(_port(p) for p in c.ports) or "<none>")])
        for title, items in (("Command", c.command), ("Args", c.args)):
            if items:
                text.line(f"    {title}:")
                text.lines.extend(f"      {line}" for item in items for line in (item.splitlines() or [""]))
        if cs is not None:
            _state(text, "State", cs.state)
            if cs.HasField("last_state") and cs.last_state.ListFields():
                _state(text, "Last State", cs.last_state)
            text.kv(4, [("Ready", str(cs.ready)), ("Restart Count", cs.restart_count)], width=_CW)
        else:
            text.kv(4, [("State", "Waiting"), ("Ready", "False"), ("Restart Count", 0)], width=_CW)
        for title, values in (("Limits", c.resources.limits), ("Requests", c.resources.requests)):
            if values:
                text.line(f"    {title}:")
                text.kv(6, sorted(values.items()))
        if probes := pod_features.describe_probes(c):
            text.kv(4, probes, width=_CW)
        if c.env_from:
            text.line("    Environment Variables from:")
            text.lines.extend(f"      {pod_features.describe_env_from(s)}" for s in c.env_from)
        if c.env:
            text.line("    Environment:")
            text.kv(6, [(e.name, pod_features.describe_env(e)) for e in c.env])
        else:
            text.kv(4, [("Environment", "<none>")], width=_CW)
    if status.conditions:
        text.line("Conditions:")
        rows = [["Type", "Status", "Reason"]] + [[c.type, c.status, c.reason] for c in status.conditions]
        text.table(rows)
    describing.events(text, ctx.events, now=ctx.now)
    return str(text)


def _port(p: Any) -> str:
    base = f"{p.container_port}/{p.protocol or 'TCP'}"
    return f"{base} (host {p.host_port})" if p.host_port else base
