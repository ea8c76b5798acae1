"""An in-memory `Runtime` for unit-testing the pod workers without root.

Containers "run" until a test ends them: `exit(id, code)`, `oom(id)`; a start
failure is injected with `fail_next_start(name, message)`. Time comes from an
injected clock, so `startedAt`/`finishedAt` are predictable. Every call is
appended to `calls` as `(operation, argument)` so tests can assert what the
agent asked of its runtime (stop before remove, a detach per pod, ...).

State lives in the object, not the agent: a test that builds a second set of
pod workers over the same FakeRuntime sees the containers "outlive" the first,
as the real runtime's do. This module is also what `skiff-agent --runtime fake`
runs with (no containers, no root), for tests of the agent process itself.
"""
from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import AsyncIterator, Callable, Sequence

from agent.clock import Clock, SystemClock
from agent.images.types import Image, ImageConfig
from agent.runtime.interface import (ContainerConfig, ContainerStats, ContainerStatus, ExecOutput,
                                     ExecResult, Sandbox, SandboxConfig, StartError, State, TerminalSize)

ExecHandler = Callable[[Sequence[str], bytes], tuple[bytes, bytes, int]]


@dataclass
class _Container:
    config: ContainerConfig
    status: ContainerStatus
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    ignores_stop_signal: bool = False


class FakeRuntime:
    """The Runtime protocol in memory. See the module docstring for the test hooks."""

    def __init__(self, *, clock: Clock | None = None, state_root: Path | None = None) -> None:
        self.clock = clock or SystemClock()
        self.state_root = state_root or Path("/nonexistent/skiff-fake")
        self.containers: dict[str, _Container] = {}
        self.sandboxes: dict[str, Sandbox] = {}
        self.sandbox_configs: dict[str, SandboxConfig] = {}
        self.calls: list[tuple[str, str]] = []
        self.stop_graces: dict[str, float] = {}   # container id -> the grace its stop was given
        self.stats_by_id: dict[str, ContainerStats] = {}
        self.exec_handler: ExecHandler = lambda argv, stdin: (b" ".join(a.encode() for a in argv) + b"\n",
                                                              b"", 0)
        self._start_failures: dict[str, str] = {}
        self._sandbox_failure: str | None = None
        self.unhealthy: str | None = None   # what check_health answers: set it to make the node NotReady

    # ------------------------------------------------------------ test hooks

    def fail_next_start(self, name: str, message: str) -> None:
        """The next start of a container called `name` raises StartError(message)."""
        self._start_failures[name] = message

    def fail_next_sandbox(self, message: str) -> None:
        """The next create_sandbox raises RuntimeError(message)."""
        self._sandbox_failure = message

    def exit(self, container_id: str, code: int, *, signal: int | None = None) -> None:
        """The container's process ends with `code`."""
        reason = "Completed" if code == 0 else "Error"
        self._finish(container_id, exit_code=code, signal=signal, reason=reason)

    def oom(self, container_id: str) -> None:
        """The kernel's OOM killer ends the container (SIGKILL, 137)."""
        self._finish(container_id, exit_code=137, signal=9, reason="OOMKilled", oom=True)

    def ignore_stop_signal(self, container_id: str) -> None:
        """`stop` will need SIGKILL (exit 137) instead of the stop signal (143)."""
        self.containers[container_id].ignores_stop_signal = True

    def running(self) -> list[ContainerStatus]:
        return [c.status for c in self.containers.values() if c.status.state is State.RUNNING]

    def by_name(self, pod_id: str, name: str) -> list[ContainerStatus]:
        """Every container (every attempt) of one pod's container `name`, oldest first."""
        found = [c.status for c in self.containers.values() if c.status.pod_id == pod_id and c.status.name == name]
        return sorted(found, key=lambda s: int(s.id.rsplit("-", 1)[-1]) if s.id.rsplit("-", 1)[-1].isdigit() else 0)

    def _finish(self, container_id: str, *, exit_code: int, signal: int | None, reason: str,
                oom: bool = False) -> None:
        c = self.containers[container_id]
        if c.status.state is State.EXITED:
            return
        c.status = replace(c.status, state=State.EXITED, exit_code=exit_code, signal=signal, reason=reason,
                           oom_killed=oom, finished_at=self.clock.now(), pid=None)
        c.exited.set()

    # ------------------------------------------------------------ sandboxes

    async def create_sandbox(self, config: SandboxConfig) -> Sandbox:
        self.calls.append(("create_sandbox", config.pod_id))
        if self._sandbox_failure is not None:
            message, self._sandbox_failure = self._sandbox_failure, None
            raise RuntimeError(message)
        if config.pod_id not in self.sandboxes:
            netns = None if config.host_network else self.state_root / "netns" / config.pod_id
            self.sandboxes[config.pod_id] = Sandbox(pod_id=config.pod_id, netns_path=netns,
                                                    state_dir=self.state_root / "pods" / config.pod_id)
            self.sandbox_configs[config.pod_id] = config
        return self.sandboxes[config.pod_id]

    async def remove_sandbox(self, pod_id: str) -> None:
        self.calls.append(("remove_sandbox", pod_id))
        live = [c.status.id for c in self.containers.values() if c.status.pod_id == pod_id]
        if live:
            raise RuntimeError(f"remove_sandbox {pod_id}: containers still present: {live}")
        self.sandboxes.pop(pod_id, None)
        self.sandbox_configs.pop(pod_id, None)

    async def list_sandboxes(self) -> Sequence[Sandbox]:
        return list(self.sandboxes.values())

    # ------------------------------------------------------------ containers

    async def start(self, config: ContainerConfig) -> ContainerStatus:
        self.calls.append(("start", config.id))
        if config.pod_id not in self.sandboxes:
            raise StartError(f"start {config.id}: no sandbox for pod {config.pod_id}")
        if config.id in self.containers:
            raise StartError(f"start {config.id}: container id already in use")
        failure = self._start_failures.pop(config.name, None)
        if failure is not None:
            raise StartError(failure)
        status = ContainerStatus(id=config.id, pod_id=config.pod_id, name=config.name, state=State.RUNNING,
                                 pid=10000 + len(self.containers), started_at=self.clock.now(),
                                 image=config.image, image_id=config.image_id)
        self.containers[config.id] = _Container(config=config, status=status)
        return status

    async def wait(self, container_id: str) -> ContainerStatus:
        c = self._get(container_id)
        await c.exited.wait()
        return c.status

    async def status(self, container_id: str) -> ContainerStatus:
        return self._get(container_id).status

    async def stop(self, container_id: str, grace_seconds: float) -> None:
        self.calls.append(("stop", container_id))
        self.stop_graces[container_id] = grace_seconds
        c = self.containers.get(container_id)
        if c is None or c.status.state is State.EXITED:
            return
        if c.ignores_stop_signal:
            self._finish(container_id, exit_code=137, signal=9, reason="Error")
        else:
            self._finish(container_id, exit_code=128 + c.config.stop_signal, signal=c.config.stop_signal,
                         reason="Error")

    async def remove(self, container_id: str) -> None:
        self.calls.append(("remove", container_id))
        c = self.containers.get(container_id)
        if c is not None and c.status.state is State.RUNNING:
            raise RuntimeError(f"remove {container_id}: container is running")
        self.containers.pop(container_id, None)

    async def list_containers(self) -> Sequence[ContainerStatus]:
        return [c.status for c in self.containers.values()]

    async def stats(self, container_id: str, *, filesystem: bool = True) -> ContainerStats:
        self._get(container_id)
        return self.stats_by_id.get(container_id) or ContainerStats(
            id=container_id, cpu_usage_seconds=0.5, memory_working_set_bytes=4 << 20, pids=1)

    def stdin_fifo(self, container_id: str) -> Path | None:
        return None   # no programs, no stdin

    async def exec(self, container_id: str, argv: Sequence[str], *, tty: bool = False,
                   stdin: AsyncIterator[bytes | TerminalSize] | None = None, output: ExecOutput,
                   size: TerminalSize | None = None) -> ExecResult:
        self.calls.append(("exec", container_id))
        c = self._get(container_id)
        if c.status.state is not State.RUNNING:
            raise StartError(f"exec in {container_id}: container is not running")
        if size is not None:
            self.calls.append(("size", container_id, size))
        data = b""
        if stdin is not None:
            async for chunk in stdin:
                if isinstance(chunk, bytes):
                    data += chunk
                else:
                    self.calls.append(("resize", container_id, chunk))
        out, err, code = self.exec_handler(argv, data)
        if out:
            await output.stdout(out)
        if err:
            await output.stderr(err)
        return ExecResult(exit_code=code)

    async def check_health(self) -> str | None:
        return self.unhealthy

    async def cleanup_orphans(self, keep_pod_ids: set[str]) -> None:
        self.calls.append(("cleanup_orphans", ",".join(sorted(keep_pod_ids))))
        for cid, c in list(self.containers.items()):
            if c.status.pod_id not in keep_pod_ids:
                self._finish(cid, exit_code=137, signal=9, reason="Error")
                del self.containers[cid]
        for pod_id in list(self.sandboxes):
            if pod_id not in keep_pod_ids:
                del self.sandboxes[pod_id]

    def _get(self, container_id: str) -> _Container:
        c = self.containers.get(container_id)
        if c is None:
            raise KeyError(f"no container {container_id!r} in the fake runtime")
        return c


class FakeImages:
    """An image resolver for the fake runtime: every reference resolves to an
    empty busybox-like image except those in `missing`."""

    def __init__(self, *, missing: set[str] | None = None,
                 configs: dict[str, ImageConfig] | None = None) -> None:
        self.missing = set(missing or ())
        self.configs = dict(configs or {})

    def resolve(self, ref: str) -> Image | None:
        if ref in self.missing:
            return None
        config = self.configs.get(ref, ImageConfig(env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
                                                   cmd=("sh",)))
        return Image(id="sha256:" + hashlib.sha256(ref.encode()).hexdigest(), reference=ref, lower_dirs=(), config=config)
