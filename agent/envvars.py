"""A container's environment from its pod spec, as kubelet builds it
(pkg/kubelet/kubelet_pods.go, makeEnvironmentVariables).

Order, and what sees what:
1. `envFrom`, source by source: every key of the ConfigMap or Secret, with the
   source's prefix; a later source overrides an earlier one; keys that are not
   valid variable names are skipped (and named, for a warning event). Values
   are taken as they are, never expanded.
2. `env`, in order: a `value` is expanded — `$(VAR)` by the variables defined
   so far (1 and the earlier `env` entries), `$$` to `$`, an undefined
   reference kept as written — and a `valueFrom` is resolved: configMapKeyRef,
   secretKeyRef (with `optional`), fieldRef (metadata.name/namespace/uid,
   metadata.labels['k'] / annotations['k'], spec.nodeName,
   spec.serviceAccountName, status.podIP/podIPs/hostIP/hostIPs) and
   resourceFieldRef (a limit or request divided by `divisor`, rounded up; an
   unset limit is the node's allocatable, as kubelet).
3. The Services' variables (`service_env`, kubelet's getServiceEnvVarMap and
   envvars.FromServices): for every Service with a ClusterIP in the pod's
   namespace when `enableServiceLinks` (default true), and for the
   `kubernetes` Service of `default` always: NAME_SERVICE_HOST,
   NAME_SERVICE_PORT (the first port), NAME_SERVICE_PORT_<PORTNAME>, and
   Docker's link variables NAME_PORT, NAME_PORT_<port>_<PROTO>{,_PROTO,_PORT,_ADDR}.
   They are visible to `$(VAR)` and overridden by envFrom and env.
4. command and args are expanded with the result (agent.containers).

The image's Env is not visible to `$(VAR)` (as in Kubernetes); it is the
base the pod's variables override. A missing ConfigMap, Secret or key that is
not `optional` raises `ContainerConfigError` with kubelet's words
(`couldn't find key SPECIAL_LEVEL in ConfigMap default/special-config`), which
the container shows as CreateContainerConfigError until the object appears.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Iterable

from google.protobuf.message import Message

from agent.containers import ContainerConfigError, expand
from agent.dns.view import ServiceInfo
from proto.skiff.v1 import types_pb2
from skiff.api.quantity import QuantityError, parse_quantity

Lookup = Callable[[str, str, str], Message | None]   # (kind, namespace, name) -> the object or None
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_SUBSCRIPTED = re.compile(r"^metadata\.(labels|annotations)\['([^'\]]+)'\]$")


def node_allocatable() -> tuple[Fraction, int]:
    """(cpus, memory bytes) of this machine: what an unset limit means to resourceFieldRef."""
    memory = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return Fraction(os.cpu_count() or 1), memory


@dataclass(frozen=True)
class EnvContext:
    """What resolving needs beyond the pod: the caches of ConfigMaps and Secrets, and the pod's addresses."""
    lookup: Lookup
    pod_ip: str = ""
    host_ip: str = ""
    allocatable: tuple[Fraction, int] = field(default_factory=node_allocatable)
    service_env: dict[str, str] = field(default_factory=dict)   # service_env(...) for the pod
    # A projected ServiceAccount token: (pod, projection) -> the token, or None (agent.tokens.TokenManager)
    token: Callable[[types_pb2.Pod, types_pb2.ServiceAccountTokenProjection], bytes | None] | None = None
    token_error: Callable[[types_pb2.Pod, types_pb2.ServiceAccountTokenProjection], str] | None = None


@dataclass
class Env:
    variables: dict[str, str]
    invalid_keys: list[str]   # envFrom keys skipped (not variable names), for a warning


def container_env(pod: types_pb2.Pod, container: types_pb2.Container, ctx: EnvContext) -> Env:
    ns = pod.metadata.namespace or "default"
    env: dict[str, str] = {}
    invalid: list[str] = []
    for source in container.env_from:
        if source.HasField("config_map_ref"):
            obj = _object(ctx, "ConfigMap", ns, source.config_map_ref.name,
                          optional=source.config_map_ref.optional)
            data = dict(obj.data) if obj is not None else {}
        else:
            obj = _object(ctx, "Secret", ns, source.secret_ref.name, optional=source.secret_ref.optional)
            data = {k: v.decode(errors="replace") for k, v in obj.data.items()} if obj is not None else {}
        for key in sorted(data):
            name = source.prefix + key
            if _ENV_NAME.match(name):
                env[name] = data[key]
            else:
                invalid.append(name)
    for var in container.env:
        if not var.HasField("value_from"):
            env[var.name] = expand(var.value, {**ctx.service_env, **env})
            continue
        value = _value_from(pod, container, var.value_from, ctx, ns)
        if value is not None:
            env[var.name] = value
    return Env(variables={**ctx.service_env, **env}, invalid_keys=invalid)


MASTER_SERVICE = ("default", "kubernetes")   # its variables are in every pod, links or not


def service_env(services: Iterable[ServiceInfo], *, namespace: str, enable_service_links: bool) -> dict[str, str]:
    """The Services' variables for a pod in `namespace` (kubelet's getServiceEnvVarMap)."""
    chosen: dict[str, ServiceInfo] = {}
    for svc in services:
        if not svc.ips or svc.type == "ExternalName":
            continue
        if (svc.namespace, svc.name) == MASTER_SERVICE:
            chosen.setdefault(svc.name, svc)
        elif svc.namespace == namespace and enable_service_links:
            chosen[svc.name] = svc
    env: dict[str, str] = {}
    for name in sorted(chosen):
        env.update(_service_variables(chosen[name]))
    return env


def _service_variables(svc: ServiceInfo) -> dict[str, str]:
    prefix = svc.name.upper().replace("-", "_")
    ip = svc.ips[0]
    env = {f"{prefix}_SERVICE_HOST": ip}
    if not svc.ports:
        return env
    env[f"{prefix}_SERVICE_PORT"] = str(svc.ports[0].port)
    for port in svc.ports:
        if port.name:
            env[f"{prefix}_SERVICE_PORT_{port.name.upper().replace('-', '_')}"] = str(port.port)
    for i, port in enumerate(svc.ports):
        protocol = (port.protocol or "TCP").upper()
        host_port = f"[{ip}]:{port.port}" if ":" in ip else f"{ip}:{port.port}"
        url = f"{protocol.lower()}://{host_port}"
        if i == 0:
            env[f"{prefix}_PORT"] = url   # Docker special-cases the first port
        link = f"{prefix}_PORT_{port.port}_{protocol}"
        env.update({link: url, f"{link}_PROTO": protocol.lower(), f"{link}_PORT": str(port.port),
                    f"{link}_ADDR": ip})
    return env


def _object(ctx: EnvContext, kind: str, namespace: str, name: str, *, optional: bool) -> Message | None:
    obj = ctx.lookup(kind, namespace, name)
    if obj is None and not optional:
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    return obj


def _value_from(pod: types_pb2.Pod, container: types_pb2.Container, vf: types_pb2.EnvVarSource,
                ctx: EnvContext, ns: str) -> str | None:
    """The value, or None when an optional reference is missing (the variable is then not set)."""
    if vf.HasField("config_map_key_ref") or vf.HasField("secret_key_ref"):
        is_cm = vf.HasField("config_map_key_ref")
        ref = vf.config_map_key_ref if is_cm else vf.secret_key_ref
        kind = "ConfigMap" if is_cm else "Secret"
        obj = _object(ctx, kind, ns, ref.name, optional=ref.optional)
        if obj is None:
            return None
        if ref.key not in obj.data:
            if ref.optional:
                return None
            raise ContainerConfigError(f"couldn't find key {ref.key} in {kind} {ns}/{ref.name}")
        value = obj.data[ref.key]
        return value if is_cm else value.decode(errors="replace")
    if vf.HasField("field_ref"):
        return field_value(pod, vf.field_ref.field_path, pod_ip=ctx.pod_ip, host_ip=ctx.host_ip)
    if vf.HasField("resource_field_ref"):
        return resource_value(pod, container, vf.resource_field_ref, ctx.allocatable)
    return None


def field_value(pod: types_pb2.Pod, path: str, *, pod_ip: str, host_ip: str) -> str:
    """A pod field by its fieldRef path (validated by the API server)."""
    m = _SUBSCRIPTED.match(path)
    if m:
        values = pod.metadata.labels if m.group(1) == "labels" else pod.metadata.annotations
        return values.get(m.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):   # downwardAPI files: k="v" lines, sorted
        values = pod.metadata.labels if path == "metadata.labels" else pod.metadata.annotations
        return "\n".join(f'{k}="{_escape(v)}"' for k, v in sorted(values.items()))
    simple = {
        "metadata.name": pod.metadata.name, "metadata.namespace": pod.metadata.namespace or "default",
        "metadata.uid": pod.metadata.uid, "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name or pod.spec.service_account or "default",
        "status.podIP": pod_ip or pod.status.pod_ip, "status.hostIP": host_ip or pod.status.host_ip,
        "status.podIPs": pod_ip or ",".join(p.ip for p in pod.status.pod_ips),
        "status.hostIPs": host_ip or pod.status.host_ip,
    }
    if path not in simple:
        raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")
    return simple[path]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def resource_value(pod: types_pb2.Pod, container: types_pb2.Container, ref: types_pb2.ResourceFieldSelector,
                   allocatable: tuple[Fraction, int]) -> str:
    """kubelet's ExtractContainerResourceValue: cpu in cores (or per divisor), memory in bytes, rounded up."""
    target = container
    if ref.container_name:
        found = [c for c in list(pod.spec.containers) + list(pod.spec.init_containers)
                 if c.name == ref.container_name]
        if not found:
            raise ContainerConfigError(f"resourceFieldRef: no container named {ref.container_name!r}")
        target = found[0]
    section, _, resource = ref.resource.partition(".")
    values = target.resources.limits if section == "limits" else target.resources.requests
    try:
        divisor = parse_quantity(ref.divisor) if ref.divisor else Fraction(1)
        if resource in values:
            amount = Fraction(parse_quantity(values[resource]))
        elif section == "limits" and resource == "cpu":
            amount = allocatable[0]
        elif section == "limits" and resource == "memory":
            amount = Fraction(allocatable[1])
        else:
            amount = Fraction(0)
    except QuantityError as exc:
        raise ContainerConfigError(f"resourceFieldRef {ref.resource}: {exc}") from None
    if not divisor:
        raise ContainerConfigError(f"resourceFieldRef {ref.resource}: divisor must not be zero")
    return str(math.ceil(Fraction(amount) / Fraction(divisor)))
