"""Container lifecycle hooks (postStart, preStop) and the termination message.

kubelet's rules (pkg/kubelet/kuberuntime/kuberuntime_container.go):
- postStart runs right after the container starts; the container is not
  reported Running until it ends, and if it fails the container is killed
  (`FailedPostStartHook` event) and restarted by its restartPolicy.
- preStop runs before the stop signal, within the grace period: whatever it
  takes is taken from the time the container then has to exit
  (`FailedPreStopHook` when it fails; the stop goes on).
- A handler is `exec` (in the container), `httpGet` / `tcpSocket` (from the
  node into the pod's network namespace, as probes) or `sleep`.
- `terminationMessagePath`: when set, a file of the node's is bind-mounted
  there; what the container wrote to it (at most 4096 bytes) becomes
  `state.terminated.message`. Unset, Skiff mounts nothing (Kubernetes'
  default /dev/termination-log is not made).
- `terminationMessagePolicy: FallbackToLogsOnError`: a container that failed
  and wrote no message gets the tail of its log (80 lines, 2048 bytes) as
  its message.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from agent.prober import checks
from proto.skiff.v1 import types_pb2

FALLBACK_LINES = 80
FALLBACK_BYTES = 2048


async def run_handler(handler: types_pb2.LifecycleHandler, *, runtime: checks.Exec, sockets_of, container_id: str,
                      container: types_pb2.Container, netns: Path | None, pod_ip: str,
                      timeout: float) -> str | None:
    """Run one hook; None on success, else why it failed (the event's text)."""
    timeout = max(timeout, 1.0)
    if handler.HasField("exec"):
        outcome = await checks.exec_probe(runtime, container_id, handler.exec.command, timeout=timeout)
    elif handler.HasField("http_get"):
        g = handler.http_get
        port = _port(g.port, container)
        if port is None:
            return f"unknown port {g.port!r}"
        outcome = await checks.http_get(sockets_of(), netns, host=g.host or pod_ip or "127.0.0.1", port=port,
                                        path=g.path or "/", scheme=g.scheme, timeout=timeout,
                                        headers=[(h.name, h.value) for h in g.http_headers])
    elif handler.HasField("tcp_socket"):
        port = _port(handler.tcp_socket.port, container)
        if port is None:
            return f"unknown port {handler.tcp_socket.port!r}"
        outcome = await checks.tcp_socket(sockets_of(), netns, host=handler.tcp_socket.host or pod_ip or "127.0.0.1",
                                          port=port, timeout=timeout)
    elif handler.HasField("sleep"):
        await asyncio.sleep(min(handler.sleep.seconds, timeout))
        return None
    else:
        return "the hook has no handler"
    return None if outcome.ok else outcome.message


def _port(value: str, container: types_pb2.Container) -> int | None:
    if value.isdigit():
        return int(value)
    for port in container.ports:
        if port.name == value:
            return port.container_port
    return None


MAX_MESSAGE_BYTES = 4096


def termination_message(path: Path) -> str:
    """What the container wrote to its terminationMessagePath (kubelet reads at most 4096 bytes)."""
    try:
        with open(path, "rb") as f:
            return f.read(MAX_MESSAGE_BYTES).decode(errors="replace")
    except OSError:
        return ""


def fallback_message(log_path: Path | None) -> str:
    """The tail of a failed container's log, as kubelet takes it for FallbackToLogsOnError."""
    if log_path is None:
        return ""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    lines = data.splitlines(keepends=True)[-FALLBACK_LINES:]
    return b"".join(lines)[-FALLBACK_BYTES:].decode(errors="replace")
