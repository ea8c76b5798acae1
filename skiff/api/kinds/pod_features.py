"""The Pod spec's probes, environment sources and volume sources: their
defaults and validation (Kubernetes' rules and field paths), and the warnings
for the fields of Kubernetes' v1 Pod that Skiff stores but does not implement.

Kept apart from pod.py (which validates the rest of the spec) so each part
reads alone; pod.py calls `set_defaults`, `validate_features` and
`unimplemented_warnings`, and nothing else here.

Warnings are Kubernetes' server warnings: a manifest written for Kubernetes
applies unchanged, and its writer is told, per field, what Skiff ignores
(`spec.containers[0].resizePolicy is not implemented by Skiff and is
ignored`). A misspelt field is still refused: every name here is a field of
the schema (proto/skiff/v1/types.proto), which the manifest reader checks.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from google.protobuf.message import Message

from proto.skiff.v1 import types_pb2
from skiff.api.kinds import pod_scheduling
from skiff.api.quantity import QuantityError, parse_quantity
from skiff.api.validation import FieldError, dns1123_label_error, dns1123_subdomain_error

# ---------------------------------------------------------------- defaults

PROBE_DEFAULTS = {"timeout_seconds": 1, "period_seconds": 10, "success_threshold": 1, "failure_threshold": 3}
DEFAULT_FILE_MODE = 0o644


def _probes(c: Message) -> list[tuple[str, types_pb2.Probe]]:
    return [(name, getattr(c, field)) for field, name in
            (("liveness_probe", "livenessProbe"), ("readiness_probe", "readinessProbe"),
             ("startup_probe", "startupProbe")) if c.HasField(field)]


def set_defaults(spec: types_pb2.PodSpec) -> None:
    """Kubernetes' defaults, written into the spec: a resource request
    defaults to its limit; probes' timing, httpGet path and scheme; volume
    file modes; fieldRef apiVersion."""
    for c in list(spec.init_containers) + list(spec.containers):
        for name, limit in c.resources.limits.items():   # a request defaults to its limit
            if name not in c.resources.requests:
                c.resources.requests[name] = limit
        for _, probe in _probes(c):
            for field, value in PROBE_DEFAULTS.items():
                if getattr(probe, field) == 0:
                    setattr(probe, field, value)
            if probe.HasField("http_get"):
                probe.http_get.path = probe.http_get.path or "/"
                probe.http_get.scheme = probe.http_get.scheme or "HTTP"
        for env in c.env:
            if env.value_from.HasField("field_ref"):
                env.value_from.field_ref.api_version = env.value_from.field_ref.api_version or "v1"
    for volume in spec.volumes:
        for source in ("config_map", "secret", "downward_api", "projected"):
            if volume.HasField(source):
                src = getattr(volume, source)
                if not src.HasField("default_mode"):
                    src.default_mode = DEFAULT_FILE_MODE
        if volume.HasField("downward_api"):
            for item in volume.downward_api.items:
                if item.HasField("field_ref"):
                    item.field_ref.api_version = item.field_ref.api_version or "v1"


# ---------------------------------------------------------------- validation

_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ENV_PREFIX = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")
VOLUME_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels",
                      "metadata.annotations")
_SUBSCRIPTED = re.compile(r"^metadata\.(labels|annotations)\['([^'\]]+)'\]$")
RESOURCES = ("limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory",
             "requests.ephemeral-storage")
MAX_MODE = 0o777


def _port_errors(port: str, path: str) -> list[FieldError]:
    if not port:
        return [FieldError(path, "Required value: a port number or a container port's name")]
    if port.isdigit() or (port.startswith("-") and port[1:].isdigit()):
        if not 1 <= int(port) <= 65535:
            return [FieldError(path, f"Invalid value: {port}: must be between 1 and 65535, inclusive")]
        return []
    if len(port) > 15 or not _PORT_NAME.match(port) or not re.search("[a-z]", port):
        return [FieldError(path, f"Invalid value: {port!r}: must be a port number or an IANA service name "
                                 f"(at most 15 lowercase letters, digits and '-', with a letter)")]
    return []


def _handler_errors(h: Message, path: str, *, kinds: tuple[str, ...]) -> list[FieldError]:
    """Exactly one handler of `kinds` (proto names), each well formed."""
    names = {"exec": "exec", "http_get": "httpGet", "tcp_socket": "tcpSocket", "grpc": "grpc", "sleep": "sleep"}
    set_ = [k for k in kinds if h.HasField(k)]
    if not set_:
        return [FieldError(path, "Required value: must specify a handler type "
                                 f"({', '.join(names[k] for k in kinds)})")]
    if len(set_) > 1:
        return [FieldError(f"{path}.{names[set_[1]]}", "Forbidden: may not specify more than 1 handler type")]
    errors: list[FieldError] = []
    has = set_[0]
    if has == "exec" and not h.exec.command:
        errors.append(FieldError(f"{path}.exec.command", "Required value"))
    if has == "http_get":
        g = h.http_get
        errors += _port_errors(g.port, f"{path}.httpGet.port")
        if g.scheme not in ("", "HTTP", "HTTPS"):
            errors.append(FieldError(f"{path}.httpGet.scheme",
                                     f'Unsupported value: "{g.scheme}": supported values: "HTTP", "HTTPS"'))
        for i, header in enumerate(g.http_headers):
            if not header.name or not re.match(r"^[-A-Za-z0-9!#$%&'*+.^_`|~]+$", header.name):
                errors.append(FieldError(f"{path}.httpGet.httpHeaders[{i}].name",
                                         f"Invalid value: {header.name!r}: a valid HTTP header name"))
    if has == "tcp_socket":
        errors += _port_errors(h.tcp_socket.port, f"{path}.tcpSocket.port")
    if has == "grpc" and not 1 <= h.grpc.port <= 65535:
        errors.append(FieldError(f"{path}.grpc.port",
                                 f"Invalid value: {h.grpc.port}: must be between 1 and 65535, inclusive"))
    if has == "sleep" and h.sleep.seconds < 0:
        errors.append(FieldError(f"{path}.sleep.seconds", "Invalid value: must be greater than or equal to 0"))
    return errors


def validate_probe(probe: types_pb2.Probe, path: str, *, kind: str) -> list[FieldError]:
    """kind: livenessProbe, readinessProbe or startupProbe."""
    errors = _handler_errors(probe, path, kinds=("exec", "http_get", "tcp_socket", "grpc"))
    for field, name in (("initial_delay_seconds", "initialDelaySeconds"), ("timeout_seconds", "timeoutSeconds"),
                        ("period_seconds", "periodSeconds"), ("success_threshold", "successThreshold"),
                        ("failure_threshold", "failureThreshold")):
        if getattr(probe, field) < 0:
            errors.append(FieldError(f"{path}.{name}", f"Invalid value: {getattr(probe, field)}: "
                                                       f"must be greater than or equal to 0"))
    if kind != "readinessProbe" and probe.success_threshold > 1:
        errors.append(FieldError(f"{path}.successThreshold", f"Invalid value: {probe.success_threshold}: "
                                                             f"must be 1"))
    if probe.HasField("termination_grace_period_seconds"):
        if kind == "readinessProbe":
            errors.append(FieldError(f"{path}.terminationGracePeriodSeconds",
                                     "Invalid value: must not be set for readinessProbes"))
        elif probe.termination_grace_period_seconds <= 0:
            errors.append(FieldError(f"{path}.terminationGracePeriodSeconds",
                                     f"Invalid value: {probe.termination_grace_period_seconds}: must be greater "
                                     f"than 0"))
    return errors


def _key_errors(key: str, path: str) -> list[FieldError]:
    if not key:
        return [FieldError(path, "Required value")]
    if len(key) > 253 or not _CONFIG_KEY.match(key) or key in (".", ".."):
        return [FieldError(path, f"Invalid value: {key!r}: a valid config key must consist of alphanumeric "
                                 f"characters, '-', '_' or '.'")]
    return []


def _field_ref_errors(ref: types_pb2.ObjectFieldSelector, path: str, *, allowed: tuple[str, ...]) -> list[FieldError]:
    fp = ref.field_path
    if not fp:
        return [FieldError(f"{path}.fieldPath", "Required value")]
    if ref.api_version not in ("", "v1"):
        return [FieldError(f"{path}.apiVersion", f'Unsupported value: "{ref.api_version}": supported values: "v1"')]
    if fp in allowed or _SUBSCRIPTED.match(fp):
        return []
    return [FieldError(f"{path}.fieldPath", f'Unsupported value: "{fp}": supported values: '
                                            + ", ".join(f'"{a}"' for a in allowed)
                                            + ", \"metadata.labels['<KEY>']\", \"metadata.annotations['<KEY>']\"")]


def _resource_ref_errors(ref: types_pb2.ResourceFieldSelector, path: str, *, container_required: bool,
                         containers: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    if container_required and not ref.container_name:
        errors.append(FieldError(f"{path}.containerName", "Required value"))
    elif ref.container_name and ref.container_name not in containers:
        errors.append(FieldError(f"{path}.containerName",
                                 f"Invalid value: {ref.container_name!r}: no container of that name in the pod"))
    if ref.resource not in RESOURCES:
        errors.append(FieldError(f"{path}.resource", f'Unsupported value: "{ref.resource}": supported values: '
                                                     + ", ".join(f'"{r}"' for r in RESOURCES)))
    if ref.divisor:
        try:
            if parse_quantity(ref.divisor) <= 0:
                errors.append(FieldError(f"{path}.divisor", f"Invalid value: {ref.divisor!r}: must be positive"))
        except QuantityError as exc:
            errors.append(FieldError(f"{path}.divisor", str(exc)))
    return errors


def _env_errors(c: types_pb2.Container, path: str, containers: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, env in enumerate(c.env):
        if not env.HasField("value_from"):
            continue
        where = f"{path}.env[{i}].valueFrom"
        vf = env.value_from
        sources = [s for s in ("field_ref", "resource_field_ref", "config_map_key_ref", "secret_key_ref")
                   if vf.HasField(s)]
        if env.value:
            errors.append(FieldError(where, "Invalid value: may not be specified when `value` is not empty"))
        if len(sources) != 1:
            errors.append(FieldError(where, "Invalid value: must specify one of: `fieldRef`, `resourceFieldRef`, "
                                            "`configMapKeyRef` or `secretKeyRef`" if not sources else
                                     "Invalid value: may not have more than one field specified at a time"))
            continue
        if vf.HasField("field_ref"):
            errors += _field_ref_errors(vf.field_ref, f"{where}.fieldRef", allowed=ENV_FIELD_PATHS)
        elif vf.HasField("resource_field_ref"):
            errors += _resource_ref_errors(vf.resource_field_ref, f"{where}.resourceFieldRef",
                                           container_required=False, containers=containers)
        else:
            field, name = (("config_map_key_ref", "configMapKeyRef") if vf.HasField("config_map_key_ref")
                           else ("secret_key_ref", "secretKeyRef"))
            ref = getattr(vf, field)
            if not ref.name:
                errors.append(FieldError(f"{where}.{name}.name", "Required value"))
            errors += _key_errors(ref.key, f"{where}.{name}.key")
    for i, source in enumerate(c.env_from):
        where = f"{path}.envFrom[{i}]"
        count = source.HasField("config_map_ref") + source.HasField("secret_ref")
        if count != 1:
            errors.append(FieldError(where, "Invalid value: must specify one of: `configMapRef` or `secretRef`"
                                     if not count else "Invalid value: may not have more than one field specified "
                                                       "at a time"))
            continue
        ref, name = ((source.config_map_ref, "configMapRef") if source.HasField("config_map_ref")
                     else (source.secret_ref, "secretRef"))
        if not ref.name:
            errors.append(FieldError(f"{where}.{name}.name", "Required value"))
        if source.prefix and not _ENV_PREFIX.match(source.prefix):
            errors.append(FieldError(f"{where}.prefix", f"Invalid value: {source.prefix!r}: a valid environment "
                                                        f"variable name must consist of alphabetic characters, "
                                                        f"digits, '_', '-', or '.', and must not start with a digit"))
    return errors


def _mode_errors(mode: int, path: str) -> list[FieldError]:
    if not 0 <= mode <= MAX_MODE:
        return [FieldError(path, f"Invalid value: {mode}: must be a number between 0 and 0777 (octal), both "
                                 f"inclusive")]
    return []


def _file_path_errors(path_value: str, path: str) -> list[FieldError]:
    if not path_value:
        return [FieldError(path, "Required value")]
    if path_value.startswith("/"):
        return [FieldError(path, f"Invalid value: {path_value!r}: must be a relative path")]
    if ".." in path_value.split("/"):
        return [FieldError(path, f"Invalid value: {path_value!r}: must not contain '..'")]
    if "\0" in path_value:
        return [FieldError(path, "must not contain a NUL byte")]
    return []


def _items_errors(items: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, item in enumerate(items):
        errors += _key_errors(item.key, f"{path}[{i}].key")
        errors += _file_path_errors(item.path, f"{path}[{i}].path")
        if item.HasField("mode"):
            errors += _mode_errors(item.mode, f"{path}[{i}].mode")
    return errors


def _downward_items_errors(items: Any, path: str, containers: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        errors += _file_path_errors(item.path, f"{where}.path")
        count = item.HasField("field_ref") + item.HasField("resource_field_ref")
        if count != 1:
            errors.append(FieldError(where, "Invalid value: must specify one of: `fieldRef` or `resourceFieldRef`"
                                     if not count else "Invalid value: fieldRef and resourceFieldRef can not be "
                                                       "specified simultaneously"))
        elif item.HasField("field_ref"):
            errors += _field_ref_errors(item.field_ref, f"{where}.fieldRef", allowed=VOLUME_FIELD_PATHS)
        else:
            errors += _resource_ref_errors(item.resource_field_ref, f"{where}.resourceFieldRef",
                                           container_required=True, containers=containers)
        if item.HasField("mode"):
            errors += _mode_errors(item.mode, f"{where}.mode")
    return errors


VOLUME_SOURCES = tuple(f.name for f in types_pb2.Volume.DESCRIPTOR.fields if f.name != "name")


def _volume_errors(volume: types_pb2.Volume, path: str, containers: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    sources = [s for s in VOLUME_SOURCES if volume.HasField(s)]
    if len(sources) > 1 and set(sources) - {"empty_dir", "host_path"}:
        errors.append(FieldError(path, "may not specify more than 1 volume type"))
    if volume.HasField("config_map"):
        cm = volume.config_map
        if not cm.name:
            errors.append(FieldError(f"{path}.configMap.name", "Required value"))
        errors += _items_errors(cm.items, f"{path}.configMap.items")
        errors += _mode_errors(cm.default_mode, f"{path}.configMap.defaultMode")
    if volume.HasField("secret"):
        s = volume.secret
        if not s.secret_name:
            errors.append(FieldError(f"{path}.secret.secretName", "Required value"))
        errors += _items_errors(s.items, f"{path}.secret.items")
        errors += _mode_errors(s.default_mode, f"{path}.secret.defaultMode")
    if volume.HasField("downward_api"):
        d = volume.downward_api
        errors += _downward_items_errors(d.items, f"{path}.downwardAPI.items", containers)
        errors += _mode_errors(d.default_mode, f"{path}.downwardAPI.defaultMode")
    if volume.HasField("projected"):
        p = volume.projected
        errors += _mode_errors(p.default_mode, f"{path}.projected.defaultMode")
        for i, source in enumerate(p.sources):
            where = f"{path}.projected.sources[{i}]"
            kinds = [f.name for f, _ in source.ListFields()]
            if len(kinds) != 1:
                errors.append(FieldError(where, "Required value: must specify exactly 1 source" if not kinds
                                         else "Forbidden: may not specify more than 1 volume type per source"))
                continue
            if source.HasField("config_map"):
                if not source.config_map.name:
                    errors.append(FieldError(f"{where}.configMap.name", "Required value"))
                errors += _items_errors(source.config_map.items, f"{where}.configMap.items")
            elif source.HasField("secret"):
                if not source.secret.name:
                    errors.append(FieldError(f"{where}.secret.name", "Required value"))
                errors += _items_errors(source.secret.items, f"{where}.secret.items")
            elif source.HasField("downward_api"):
                errors += _downward_items_errors(source.downward_api.items, f"{where}.downwardAPI.items",
                                                 containers)
    return errors


def validate_features(spec: types_pb2.PodSpec, path: str) -> list[FieldError]:
    """Probes, env sources and volume sources of the spec at `path`."""
    errors: list[FieldError] = pod_scheduling.validate_scheduling(spec, path)   # affinity, spreading, priority
    containers = {c.name for c in spec.containers} | {c.name for c in spec.init_containers}
    for i, volume in enumerate(spec.volumes):
        errors += _volume_errors(volume, f"{path}.volumes[{i}]", containers)
    for field, label in (("init_containers", "initContainers"), ("containers", "containers")):
        for i, c in enumerate(getattr(spec, field)):
            where = f"{path}.{label}[{i}]"
            errors += _env_errors(c, where, containers)
            for name, probe in _probes(c):
                if field == "init_containers" and c.restart_policy != "Always":
                    errors.append(FieldError(f"{where}.{name}", "Forbidden: may not be set for init containers "
                                                                "without restartPolicy=Always"))
                    continue
                errors += validate_probe(probe, f"{where}.{name}", kind=name)
            if c.HasField("restart_policy") and (field == "containers" or c.restart_policy != "Always"):
                errors.append(FieldError(f"{where}.restartPolicy",
                                         f'Unsupported value: "{c.restart_policy}": supported values: "Always"'
                                         if field == "init_containers" else
                                         "Forbidden: may not be set for non-init containers"))
    return errors + _dns_errors(spec, path)


DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")


def _dns_errors(spec: types_pb2.PodSpec, path: str) -> list[FieldError]:
    """dnsPolicy, dnsConfig and subdomain, as Kubernetes' validateDNSPolicy / validatePodDNSConfig."""
    errors: list[FieldError] = []
    if spec.dns_policy and spec.dns_policy not in DNS_POLICIES:
        supported = ", ".join(f'"{p}"' for p in DNS_POLICIES)
        errors.append(FieldError(f"{path}.dnsPolicy",
                                 f'Unsupported value: "{spec.dns_policy}": supported values: {supported}'))
    if spec.subdomain and (problem := dns1123_label_error(spec.subdomain)):
        errors.append(FieldError(f"{path}.subdomain", problem))
    config, where = spec.dns_config, f"{path}.dnsConfig"
    if spec.dns_policy == "None":
        if not spec.HasField("dns_config"):
            errors.append(FieldError(where, "Required value: must provide `dnsConfig` when `dnsPolicy` is None"))
        elif not config.nameservers:
            errors.append(FieldError(f"{where}.nameservers", "Required value: must provide at least one DNS "
                                                             "nameserver when `dnsPolicy` is None"))
    if len(config.nameservers) > 3:
        errors.append(FieldError(f"{where}.nameservers", "Invalid value: must not have more than 3 nameservers"))
    for i, server in enumerate(config.nameservers):
        try:
            ipaddress.ip_address(server)
        except ValueError:
            errors.append(FieldError(f"{where}.nameservers[{i}]", f'Invalid value: "{server}": must be a valid IP address'))
    if len(config.searches) > 32:
        errors.append(FieldError(f"{where}.searches", "Invalid value: must not have more than 32 search paths"))
    for i, search in enumerate(config.searches):
        if search != "." and (problem := dns1123_subdomain_error(search.rstrip("."))):
            errors.append(FieldError(f"{where}.searches[{i}]", problem))
    for i, option in enumerate(config.options):
        if not option.name:
            errors.append(FieldError(f"{where}.options[{i}].name", "Required value: Option.Name must not be empty"))
    return errors


# ---------------------------------------------------------------- not implemented

Check = Callable[[Any], bool]
_ALWAYS: Check = lambda value: True  # noqa: E731

# (message, proto field) -> when a set value is not implemented. Everything else
# of the schema is implemented, or harmless (serviceAccountName: read by fieldRef).
NOT_IMPLEMENTED: dict[tuple[str, str], Check] = {
    **{("PodSpec", f): _ALWAYS for f in (
        "ephemeral_containers", "active_deadline_seconds", "host_pid",
        "host_ipc", "host_aliases",
        "readiness_gates", "runtime_class_name",
        "overhead", "set_hostname_as_fqdn", "host_users",
        "scheduling_gates", "resource_claims", "resources")},
    ("Lifecycle", "stop_signal"): _ALWAYS,
    ("PodOS", "name"): lambda v: v != "linux",
    **{("Container", f): _ALWAYS for f in (
        "volume_devices",
        "resize_policy", "stdin_once")},
    ("ResourceRequirements", "claims"): _ALWAYS,
    **{("SecurityContext", f): _ALWAYS for f in ("se_linux_options", "windows_options", "app_armor_profile")},
    ("SecurityContext", "proc_mount"): lambda v: v != "Default",
    **{("PodSecurityContext", f): _ALWAYS for f in (
        "se_linux_options", "windows_options", "sysctls", "fs_group_change_policy", "app_armor_profile",
        "supplemental_groups_policy", "se_linux_change_policy")},
    ("VolumeMount", "mount_propagation"): lambda v: v != "None",
    ("VolumeMount", "sub_path_expr"): _ALWAYS,
    ("VolumeMount", "recursive_read_only"): lambda v: v != "Disabled",
    **{("Volume", f): _ALWAYS for f in VOLUME_SOURCES if f not in (
        "empty_dir", "host_path", "config_map", "secret", "downward_api", "projected")},
    ("VolumeProjection", "cluster_trust_bundle"): _ALWAYS,
}


def unimplemented_warnings(msg: Message, path: str) -> list[str]:
    """One warning per set field of `msg` (a PodSpec at `path`) that Skiff
    stores but ignores, in the order of the schema."""
    warnings: list[str] = []
    _walk(msg, path, warnings)
    return warnings


def _walk(msg: Message, path: str, out: list[str]) -> None:
    type_name = msg.DESCRIPTOR.name
    for f, value in msg.ListFields():
        where = f"{path}.{f.json_name}" if path else f.json_name
        check = NOT_IMPLEMENTED.get((type_name, f.name))
        if check is not None and check(value):
            out.append(f"{where} is not implemented by Skiff and is ignored")
            continue
        if f.message_type is None or f.message_type.GetOptions().map_entry:
            continue
        if f.is_repeated:
            for i, item in enumerate(value):
                _walk(item, f"{where}[{i}]", out)
        else:
            _walk(value, where, out)


# ---------------------------------------------------------------- describe (kubectl's wording)

def describe_probe(probe: types_pb2.Probe) -> str:
    """`http-get http://:8080/healthz delay=3s timeout=1s period=3s #success=1 #failure=3`, as kubectl."""
    if probe.HasField("exec"):
        handler = f"exec [{' '.join(probe.exec.command)}]"
    elif probe.HasField("http_get"):
        g = probe.http_get
        handler = f"http-get {(g.scheme or 'HTTP').lower()}://{g.host}:{g.port}{g.path}"
    elif probe.HasField("tcp_socket"):
        handler = f"tcp-socket {probe.tcp_socket.host}:{probe.tcp_socket.port}"
    elif probe.HasField("grpc"):
        handler = f"grpc <pod>:{probe.grpc.port} {probe.grpc.service}".rstrip()
    else:
        handler = "unknown"
    return (f"{handler} delay={probe.initial_delay_seconds}s timeout={probe.timeout_seconds}s "
            f"period={probe.period_seconds}s #success={probe.success_threshold} #failure={probe.failure_threshold}")


def describe_probes(c: types_pb2.Container) -> list[tuple[str, str]]:
    return [(name.removesuffix("Probe").capitalize(), describe_probe(probe)) for name, probe in _probes(c)]


def describe_env(var: types_pb2.EnvVar) -> str:
    """An env var's value as `kubectl describe` shows it (references, not secret values)."""
    if not var.HasField("value_from"):
        return var.value
    vf = var.value_from
    if vf.HasField("field_ref"):
        return f"({vf.field_ref.api_version or 'v1'}:{vf.field_ref.field_path})"
    if vf.HasField("resource_field_ref"):
        r = vf.resource_field_ref
        return f"{r.resource} ({r.container_name or 'this container'})"
    if vf.HasField("config_map_key_ref"):
        r = vf.config_map_key_ref
        return f"<set to the key '{r.key}' of config map '{r.name}'>  Optional: {str(r.optional).lower()}"
    r = vf.secret_key_ref
    return f"<set to the key '{r.key}' in secret '{r.name}'>  Optional: {str(r.optional).lower()}"


def describe_env_from(source: types_pb2.EnvFromSource) -> str:
    kind, ref = (("ConfigMap", source.config_map_ref) if source.HasField("config_map_ref")
                 else ("Secret", source.secret_ref))
    prefix = f" with prefix '{source.prefix}'" if source.prefix else ""
    return f"{ref.name}  {kind}{prefix}  Optional: {str(ref.optional).lower()}"


def sidecar_names(spec: types_pb2.PodSpec) -> set[str]:
    """Init containers with restartPolicy Always: Kubernetes' native sidecars."""
    return {c.name for c in spec.init_containers if c.HasField("restart_policy") and c.restart_policy == "Always"}
