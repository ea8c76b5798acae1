"""Validation of API objects: pure functions, no I/O.

`validate(obj)` returns every problem as a FieldError whose `path` uses the
manifest's (Kubernetes JSON) names, e.g. "spec.containers[0].resources.limits.memory".
The API server rejects an object with any error (INVALID_ARGUMENT, the first
path in trailing metadata); the CLI runs the same function before sending and
adds the file, document index and line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from google.protobuf.message import Message

from proto.skiff.v1 import types_pb2
from skiff.api.quantity import QuantityError, cpu_millis, memory_bytes, parse_quantity


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage", "pods")


def dns1123_label_error(value: str) -> str | None:
    if not value:
        return "required"
    if len(value) > 63:
        return f"{value!r}: must be no more than 63 characters"
    if not _DNS1123_LABEL.match(value):
        return (f"{value!r}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                f"or '-', and must start and end with an alphanumeric character")
    return None


def dns1123_subdomain_error(value: str) -> str | None:
    if not value:
        return "required"
    if len(value) > 253:
        return f"{value!r}: must be no more than 253 characters"
    if not _DNS1123_SUBDOMAIN.match(value):
        return (f"{value!r}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                f"characters, '-' or '.', and must start and end with an alphanumeric character")
    return None


def validate(obj: Message) -> list[FieldError]:
    """Every problem in `obj` (empty when it is valid)."""
    errors = _validate_meta(obj)
    if isinstance(obj, types_pb2.Pod):
        errors += _validate_pod_spec(obj.spec, "spec")
    elif isinstance(obj, types_pb2.Node):
        errors += _validate_node(obj)
    return errors


def _validate_meta(obj: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    meta = obj.metadata
    # Nodes and pods are named like DNS subdomains in Kubernetes.
    if not meta.name and meta.generate_name:
        pass  # the server fills the name
    elif problem := dns1123_subdomain_error(meta.name):
        errors.append(FieldError("metadata.name", problem))
    if meta.namespace and (problem := dns1123_label_error(meta.namespace)):
        errors.append(FieldError("metadata.namespace", problem))
    for key, value in meta.labels.items():
        if not _LABEL_VALUE.match(value) or len(value) > 63:
            errors.append(FieldError(f"metadata.labels.{key}",
                                     f"{value!r}: a label value must be 63 characters or less, "
                                     f"alphanumeric, '-', '_' or '.', starting and ending alphanumeric"))
    return errors


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
        elif mount.mount_path in mount_paths:
            errors.append(FieldError(f"{where}.mountPath", f"{mount.mount_path!r}: must be unique"))
        mount_paths.add(mount.mount_path)
        if mount.sub_path and (mount.sub_path.startswith("/") or ".." in mount.sub_path.split("/")):
            errors.append(FieldError(f"{where}.subPath", f"{mount.sub_path!r}: must be a relative path without '..'"))
    return errors


def _validate_pod_spec(spec: types_pb2.PodSpec, path: str) -> list[FieldError]:
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
        if volume.HasField("host_path") and not volume.host_path.path.startswith("/"):
            errors.append(FieldError(f"{where}.hostPath.path", "must be an absolute path"))
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
    if spec.HasField("termination_grace_period_seconds") and spec.termination_grace_period_seconds < 0:
        errors.append(FieldError(f"{path}.terminationGracePeriodSeconds", "must be greater than or equal to 0"))
    if spec.hostname and (problem := dns1123_label_error(spec.hostname)):
        errors.append(FieldError(f"{path}.hostname", problem))
    return errors


def _validate_node(node: types_pb2.Node) -> list[FieldError]:
    errors: list[FieldError] = []
    for section in ("capacity", "allocatable"):
        for name, value in getattr(node.status, section).items():
            try:
                parse_quantity(value)
            except QuantityError as exc:
                errors.append(FieldError(f"status.{section}.{name}", str(exc)))
    return errors
