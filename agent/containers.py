"""Pod spec + image config → the runtime's `ContainerConfig`, by Kubernetes' rules.

Pure translation, no runtime calls: the pod worker calls
`build_container_config` for each start attempt. What the user wrote that
cannot work (a missing volume, runAsNonRoot with uid 0, a hostPath of the wrong
type) raises `ContainerConfigError` with the waiting reason Kubernetes reports
(`CreateContainerConfigError`, `CreateContainerError`) and a message naming the
field, so the pod shows it instead of the agent crashing.

The rules followed:
- argv: command/args against the image's Entrypoint/Cmd (kubelet's table:
  neither → Entrypoint+Cmd; command only → command; args only →
  Entrypoint+args; both → command+args), with `$(VAR)` expanded from the
  pod's variables for the container (not the image's) and `$$` as the escape.
- env: the image's Env, overridden by the pod's variables (agent.envvars
  builds them as kubelet: envFrom, then env in order); PATH defaulted as runc does.
- user: securityContext.runAsUser/runAsGroup (container over pod) over the
  image's User, which may be a name looked up in the image's /etc/passwd.
- log path: <pods dir>/<ns>_<name>_<uid>/<container>/<restart>.log, as kubelet.
"""
from __future__ import annotations

import hashlib
import re
import signal as signals
from dataclasses import dataclass
from pathlib import Path

from agent.images.types import Image
from agent.runtime.interface import ContainerConfig, Mount, Resources, SandboxConfig, SecurityConfig
from proto.skiff.v1 import types_pb2
from skiff.api.capabilities import ALL_CAPS, canonical as _cap
from skiff.api.quantity import QuantityError, cpu_millis, memory_bytes

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's default capability set (moby's oci/caps/defaults.go).
DEFAULT_CAPS = frozenset(f"CAP_{c}" for c in (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
    "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"))

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


class ContainerConfigError(Exception):
    """The container cannot be configured; `reason` is the waiting reason to show."""

    def __init__(self, message: str, *, reason: str = "CreateContainerConfigError") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class PodPaths:
    """Where a pod's files live on the node."""
    root: Path  # <pods dir>/<ns>_<name>_<uid>

    @classmethod
    def of(cls, *, pods_dir: Path, namespace: str, name: str, uid: str) -> "PodPaths":
        return cls(root=pods_dir / f"{namespace}_{name}_{uid}")

    def log_path(self, container: str, restart: int) -> Path:
        return self.root / container / f"{restart}.log"

    def volume_dir(self, volume: str) -> Path:
        return self.root / "volumes" / volume


def container_id(*, pod_uid: str, name: str, restart: int) -> str:
    """A short unique id per start attempt; the restart count is its suffix so a
    restarted agent recovers it from the runtime's list alone."""
    digest = hashlib.sha256(f"{pod_uid}/{name}".encode()).hexdigest()[:16]
    return f"{digest}-{restart}"


def restart_of(container_id_: str) -> int:
    """The restart count encoded in a container id (0 if it carries none)."""
    suffix = container_id_.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, undefined
    references stay as written, and $$ is a literal $."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR_REF.sub(sub, text)


def merge_argv(container: types_pb2.Container, image: Image, env: dict[str, str]) -> tuple[str, ...]:
    """argv, `env` being the pod's variables for the container."""
    entrypoint = tuple(image.config.entrypoint or ())
    cmd = tuple(image.config.cmd or ())
    command = tuple(expand(a, env) for a in container.command)
    args = tuple(expand(a, env) for a in container.args)
    if command:
        argv = command + args
    elif args:
        argv = entrypoint + args
    else:
        argv = entrypoint + cmd
    if not argv:
        raise ContainerConfigError(f"container {container.name!r}: no command specified (neither the pod "
                                   f"nor the image {image.reference!r} gives one)", reason="CreateContainerError")
    return argv


def literal_env(container: types_pb2.Container) -> dict[str, str]:
    """The container's `env` values alone, expanded in order (no valueFrom, no envFrom)."""
    env: dict[str, str] = {}
    for var in container.env:
        if not var.HasField("value_from"):
            env[var.name] = expand(var.value, env)
    return env


def merge_env(image: Image, pod_env: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in image.config.env:
        key, _, value = item.partition("=")
        env[key] = value
    env.update(pod_env)
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def container_resources(container: types_pb2.Container, *, pids_limit: int) -> Resources:
    limits, requests = container.resources.limits, container.resources.requests
    try:
        cpu_limit = cpu_millis(limits["cpu"]) if "cpu" in limits else None
        # Kubernetes defaults a missing request to the limit.
        cpu_request = cpu_millis(requests["cpu"]) if "cpu" in requests else cpu_limit
        memory = memory_bytes(limits["memory"]) if "memory" in limits else None
    except QuantityError as exc:
        raise ContainerConfigError(f"container {container.name!r}: resources: {exc}") from None
    return Resources(cpu_request_millis=cpu_request, cpu_limit_millis=cpu_limit,
                     memory_limit_bytes=memory, pids_limit=pids_limit)


def sandbox_config(pod: types_pb2.Pod, *, pids_limit: int, resolv_conf: str = "") -> SandboxConfig:
    """The pod-level half: hostname, resolv.conf (agent.dns.resolvconf) and the pod
    cgroup's limits (sums of the containers', set only when every container has one)."""
    per = [container_resources(c, pids_limit=pids_limit) for c in pod.spec.containers]
    cpu = sum(r.cpu_limit_millis for r in per) if per and all(r.cpu_limit_millis for r in per) else None
    mem = sum(r.memory_limit_bytes for r in per) if per and all(r.memory_limit_bytes for r in per) else None
    req = sum(r.cpu_request_millis or 0 for r in per) or None
    return SandboxConfig(
        pod_id=pod.metadata.uid, namespace=pod.metadata.namespace, name=pod.metadata.name,
        hostname=(pod.spec.hostname or pod.metadata.name)[:63],
        resources=Resources(cpu_request_millis=req, cpu_limit_millis=cpu, memory_limit_bytes=mem,
                            pids_limit=pids_limit),
        share_process_namespace=pod.spec.share_process_namespace, host_network=pod.spec.host_network,
        resolv_conf=resolv_conf)


def _lookup_passwd(image: Image, user: str, *, file: str) -> tuple[int, int] | None:
    # lower_dirs are lowest first: the topmost layer that has the file wins.
    for layer in reversed(image.lower_dirs):
        path = layer / "etc" / file
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                fields = line.split(":")
                if len(fields) >= 4 and fields[0] == user:
                    return int(fields[2]), int(fields[3])
            return None
    return None


def image_user(image: Image, container_name: str) -> tuple[int | None, int | None, str]:
    """(uid, gid, the raw user) from the image's User; uid None when the image
    names no user."""
    raw = image.config.user
    if not raw:
        return None, None, ""
    user, _, group = raw.partition(":")
    if user.isdigit():
        uid, gid = int(user), None
    else:
        found = _lookup_passwd(image, user, file="passwd")
        if found is None:
            raise ContainerConfigError(f"container {container_name!r}: unable to find user {user} "
                                       f"in the image's /etc/passwd")
        uid, gid = found
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = _lookup_passwd(image, group, file="group")
            if found is None:
                raise ContainerConfigError(f"container {container_name!r}: unable to find group {group} "
                                           f"in the image's /etc/group")
            gid = found[0]
    return uid, gid, raw


def security_config(pod: types_pb2.Pod, container: types_pb2.Container, image: Image) -> SecurityConfig:
    psc, csc = pod.spec.security_context, container.security_context
    img_uid, img_gid, raw_user = image_user(image, container.name)
    uid = csc.run_as_user if csc.HasField("run_as_user") else (
        psc.run_as_user if psc.HasField("run_as_user") else img_uid)
    gid = csc.run_as_group if csc.HasField("run_as_group") else (
        psc.run_as_group if psc.HasField("run_as_group") else img_gid)
    non_root = csc.run_as_non_root if csc.HasField("run_as_non_root") else (
        psc.run_as_non_root if psc.HasField("run_as_non_root") else False)
    pod_ref = f"{pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})"
    if non_root and (uid or 0) == 0:
        # kubelet's own words (pkg/kubelet/kuberuntime/security_context_others.go).
        raise ContainerConfigError(f'container has runAsNonRoot and image will run as root '
                                   f'(pod: "{pod_ref}", container: {container.name})')
    privileged = csc.privileged if csc.HasField("privileged") else False
    caps: frozenset[str] | None = None
    if privileged:
        caps = ALL_CAPS
    elif csc.HasField("capabilities"):
        drop = {_cap(c) for c in csc.capabilities.drop}
        add = {_cap(c) for c in csc.capabilities.add}
        caps = frozenset() if "CAP_ALL" in drop else DEFAULT_CAPS - drop
        caps = ALL_CAPS if "CAP_ALL" in add else frozenset(caps | add)
        unknown = sorted(c for c in caps if c not in ALL_CAPS)
        if unknown:
            raise ContainerConfigError(f"container {container.name!r}: securityContext.capabilities: "
                                       f"unknown capability {unknown[0]}")
    seccomp = (csc.seccomp_profile.type if csc.HasField("seccomp_profile") and csc.seccomp_profile.type
               else psc.seccomp_profile.type if psc.HasField("seccomp_profile") and psc.seccomp_profile.type
               else "RuntimeDefault")
    if seccomp not in ("RuntimeDefault", "Unconfined"):
        raise ContainerConfigError(f"container {container.name!r}: securityContext.seccompProfile.type "
                                   f"{seccomp!r} is not RuntimeDefault or Unconfined")
    allow_escalation = csc.allow_privilege_escalation if csc.HasField("allow_privilege_escalation") else False
    return SecurityConfig(
        uid=uid or 0, gid=gid or 0, supplemental_gids=tuple(psc.supplemental_groups),
        privileged=privileged,
        read_only_rootfs=csc.read_only_root_filesystem if csc.HasField("read_only_root_filesystem") else False,
        no_new_privileges=not (privileged or allow_escalation),
        capabilities=caps, seccomp="Unconfined" if privileged else seccomp)


def stop_signal_of(image: Image) -> int:
    raw = image.config.stop_signal.strip().upper()
    if not raw:
        return int(signals.SIGTERM)
    if raw.isdigit():
        return int(raw)
    try:
        return int(signals.Signals[raw if raw.startswith("SIG") else f"SIG{raw}"])
    except KeyError:
        return int(signals.SIGTERM)


def build_container_config(*, pod: types_pb2.Pod, container: types_pb2.Container, image: Image,
                           restart: int, paths: PodPaths, pids_limit: int,
                           mounts: tuple[Mount, ...], pod_env: dict[str, str] | None = None,
                           oom_score_adj: int | None = None) -> ContainerConfig:
    """The ContainerConfig of one start attempt (restart = the restart count); pod_env:
    the pod's variables for it (agent.envvars), by default its literal `env` values."""
    if pod_env is None:
        pod_env = literal_env(container)
    env = merge_env(image, pod_env)
    argv = merge_argv(container, image, pod_env)
    return ContainerConfig(
        id=container_id(pod_uid=pod.metadata.uid, name=container.name, restart=restart),
        pod_id=pod.metadata.uid, name=container.name, image=container.image, image_id=image.id,
        lower_dirs=image.lower_dirs, args=argv, env=tuple(env.items()),
        working_dir=container.working_dir or image.config.working_dir or "/",
        resources=container_resources(container, pids_limit=pids_limit),
        mounts=mounts, security=security_config(pod, container, image),
        log_path=paths.log_path(container.name, restart), stop_signal=stop_signal_of(image),
        tty=container.tty, stdin=container.stdin, oom_score_adj=oom_score_adj)
