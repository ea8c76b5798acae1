"""The one boundary between the agent and a container runtime.

The pod workers speak only this protocol. Two implementations sit behind it:
`agent.runtime.linux.LinuxRuntime` (ours, on the kernel: namespaces, cgroups,
overlay + pivot_root) and `agent.runtime.fake.FakeRuntime` (in memory, for
unit-testing the pod workers without root). The real one has its own tests as
root under tests/agent/runtime/.

Lifecycle of a container, as this protocol sees it:

      create_sandbox(pod)          (pod-level: net/ipc/uts namespaces, pod cgroup)
            │
            ▼
      start(ContainerConfig) ──► RUNNING ──(process exits / OOM / killed)──► EXITED
                                    │                                           │
                                 stop(id, grace)  ─────────────────────────────►│
                                                                                ▼
                                                                           remove(id)
      remove_sandbox(pod_id)       (after every container of the pod is removed)

Guarantees every implementation keeps:
- `stop`, `remove` and `remove_sandbox` are idempotent: calling them for
  something already gone is not an error.
- Containers outlive the agent process: a new runtime object created after a
  crash finds them again through `list_containers()`, and the exit status of
  a container that ended meanwhile is still reported.
- `remove_sandbox` and `cleanup_orphans` leave no mount, cgroup, namespace or
  process behind.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import AsyncIterator, Protocol, Sequence, runtime_checkable


@dataclass(frozen=True)
class Resources:
    """Limits in Kubernetes' terms; the cgroup driver turns them into files."""
    cpu_request_millis: int | None = None   # -> cpu.shares (v1) / cpu.weight (v2)
    cpu_limit_millis: int | None = None     # -> cfs quota over a 100 ms period
    memory_limit_bytes: int | None = None   # -> memory.limit_in_bytes / memory.max
    pids_limit: int | None = None           # -> pids.max


@dataclass(frozen=True)
class Mount:
    """A mount inside the container. kind: "bind" (source is a host path) or "tmpfs"."""
    target: str
    source: str = ""
    kind: str = "bind"
    read_only: bool = False
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecurityConfig:
    uid: int = 0
    gid: int = 0
    supplemental_gids: tuple[int, ...] = ()
    privileged: bool = False
    read_only_rootfs: bool = False
    no_new_privileges: bool = True
    # Effective capability names ("CAP_NET_BIND_SERVICE"); None = Docker's default set.
    capabilities: frozenset[str] | None = None
    seccomp: str = "RuntimeDefault"         # or "Unconfined"


@dataclass(frozen=True)
class SandboxConfig:
    """What a pod holds in common for its containers."""
    pod_id: str              # the pod's uid
    namespace: str
    name: str
    hostname: str
    resources: Resources = Resources()      # pod-level cgroup limits (sum of containers)
    share_process_namespace: bool = False
    host_network: bool = False
    dns_search: tuple[str, ...] = ()
    # The pod's /etc/resolv.conf as written (agent.dns.resolvconf, per dnsPolicy); "": the
    # host's resolvers less loopback ones, with dns_search (image builds, tests).
    resolv_conf: str = ""


@dataclass(frozen=True)
class Sandbox:
    pod_id: str
    netns_path: Path | None   # where the pod's network namespace is pinned
    state_dir: Path           # per-pod files (hosts, hostname, resolv.conf, volumes)


@dataclass(frozen=True)
class ContainerConfig:
    """Everything needed to run one container; built by the pod worker from the
    pod spec and the image config (entrypoint/cmd already merged)."""
    id: str                          # unique per start attempt
    pod_id: str
    name: str                        # the container's name in the pod
    image: str                       # the reference, for status
    image_id: str                    # the image's config digest
    lower_dirs: tuple[Path, ...]     # image layers, lowest first
    args: tuple[str, ...]            # argv; args[0] is looked up in PATH of env
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = "/"
    resources: Resources = Resources()
    mounts: tuple[Mount, ...] = ()
    security: SecurityConfig = SecurityConfig()
    log_path: Path | None = None     # stdout+stderr appended here
    # The overlay upper dir. None: the runtime makes one and removes it with the
    # container. Given (the image builder's RUN): the caller owns it, and it is
    # kept after remove() so the caller can turn the diff into a layer.
    upper_dir: Path | None = None
    stop_signal: int = 15
    tty: bool = False
    stdin: bool = False
    # Written to /proc/self/oom_score_adj before exec (kubelet's value for the pod's QoS class); None: inherited.
    oom_score_adj: int | None = None


class State(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ContainerStatus:
    id: str
    pod_id: str
    name: str
    state: State
    pid: int | None = None           # host pid of the container's init
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None     # 128+N for a signal, as a shell reports it
    signal: int | None = None
    oom_killed: bool = False
    reason: str = ""                 # "Completed", "Error", "OOMKilled", "StartError"
    message: str = ""
    image: str = ""
    image_id: str = ""


@dataclass(frozen=True)
class ContainerStats:
    id: str
    cpu_usage_seconds: float
    memory_working_set_bytes: int
    pids: int
    # The rest, for cAdvisor's series (agent/cadvisor.py); a runtime that cannot say leaves 0.
    memory_usage_bytes: int = 0
    memory_rss_bytes: int = 0
    memory_cache_bytes: int = 0
    memory_limit_bytes: int = 0      # 0: no limit
    memory_failcnt: int = 0
    oom_events: int = 0
    cpu_periods: int = 0
    cpu_throttled_periods: int = 0
    cpu_throttled_seconds: float = 0.0
    fs_usage_bytes: int = 0          # the writable layer: allocated bytes, inodes
    fs_inodes: int = 0


@dataclass(frozen=True)
class ExecResult:
    exit_code: int


@dataclass(frozen=True)
class TerminalSize:
    """An exec's terminal size; in an exec's stdin stream, a resize."""
    rows: int
    cols: int


class StartError(Exception):
    """The container could not be started; str(exc) is the user-facing reason
    (e.g. 'exec: "nosuch": executable file not found in $PATH')."""


@runtime_checkable
class Runtime(Protocol):
    async def create_sandbox(self, config: SandboxConfig) -> Sandbox: ...

    async def remove_sandbox(self, pod_id: str) -> None: ...

    async def start(self, config: ContainerConfig) -> ContainerStatus:
        """Create and start; returns once the process runs (or raises StartError)."""

    async def wait(self, container_id: str) -> ContainerStatus:
        """Returns when the container has exited, with its final status."""

    async def status(self, container_id: str) -> ContainerStatus: ...

    async def stop(self, container_id: str, grace_seconds: float) -> None:
        """The stop signal, then SIGKILL after grace_seconds; returns once exited."""

    async def remove(self, container_id: str) -> None: ...

    async def list_containers(self) -> Sequence[ContainerStatus]: ...

    async def list_sandboxes(self) -> Sequence[Sandbox]: ...

    async def stats(self, container_id: str, *, filesystem: bool = True) -> ContainerStats:
        """CPU, memory and pids from the cgroup; with `filesystem`, also the
        writable layer's usage (a walk of its tree: only for callers that need it)."""
        ...

    def stdin_fifo(self, container_id: str) -> Path | None:
        """The FIFO a `stdin: true` container's program reads as its stdin (an
        attach writes to it); None if it has none."""

    async def exec(self, container_id: str, argv: Sequence[str], *, tty: bool = False,
                   stdin: AsyncIterator[bytes | TerminalSize] | None = None,
                   output: "ExecOutput", size: TerminalSize | None = None) -> ExecResult:
        """Run argv in the container. With tty, `size` is the terminal's size
        from the start, and TerminalSize items in stdin resize it."""

    async def cleanup_orphans(self, keep_pod_ids: set[str]) -> None:
        """Remove every sandbox and container not in keep_pod_ids (after a crash)."""

    async def check_health(self) -> str | None:
        """None if the runtime can start containers, else why not (the node
        is then not Ready). Repairs what it can first: a dead zygote is
        replaced here, not only at the next start."""


class ExecOutput(Protocol):
    async def stdout(self, data: bytes) -> None: ...
    async def stderr(self, data: bytes) -> None: ...
