"""What the Linux runtime keeps on disk, so containers outlive the agent.

Layout under the runtime's run_dir (volatile: /run/skiff by default):

    containers/<id>/config.json   the ContainerConfig as started (JSON)
    containers/<id>/state.json    the program's host pid + its start time in
                                  clock ticks (/proc/PID/stat field 22) to
                                  tell it from a later process reusing the pid
    containers/<id>/exit          the program's exit status, written by the
                                  zygote (its parent) before reaping it
    containers/<id>/start_error   why start() failed (StartError's text)
    containers/<id>/{upper,work}  the overlay's writable layer (if ours)
    pods/<pod_id>/sandbox.json    the SandboxConfig
    pods/<pod_id>/{hosts,hostname,resolv.conf}   bind-mounted into containers
    netns/<pod_id>, ns/<pod_id>/{ipc,uts,pid}    pinned namespaces
    zygote.sock, zygote.pid       where the node's zygote listens, and its pid

A new LinuxRuntime rebuilds everything it knows from these files; nothing is
kept only in memory. Every write is write-to-temp + rename, so a crash never
leaves a half-written record.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import os
from pathlib import Path
from typing import Any


def _default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, enum.Enum):
        return o.value
    raise TypeError(f"not JSON-serializable: {type(o).__name__}")


def to_json_dict(obj: Any) -> dict:
    """A (frozen) dataclass as plain JSON data (Paths → str, sets → sorted lists)."""
    return json.loads(json.dumps(dataclasses.asdict(obj), default=_default))


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, default=_default))
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except json.JSONDecodeError:
        # A torn file (cut by a crash mid-write): as good as not there.
        return None


def proc_start_time(pid: int, *, proc_fd: int | None = None) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot), or
    None if there is no such process. comm may hold spaces or ')', so split
    after the last ')'. proc_fd: an fd of the host's /proc to read through
    (for a caller whose root may be moved by a container's pivot_root)."""
    try:
        fd = os.open(f"{pid}/stat" if proc_fd is not None else f"/proc/{pid}/stat",
                     os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_fd)
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    fields = raw[raw.rindex(b")") + 2:].split()
    return int(fields[19])


def proc_state(pid: int, start_time: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of pid if it is still the very process
    that was recorded (zombies included), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(b")") + 2:].split()
    if int(fields[19]) != start_time or fields[0] == b"X":
        return None
    return fields[0].decode(), int(fields[1])


def process_name(pid: int) -> str:
    """/proc/PID/comm ("" if there is no such process)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def is_alive(pid: int, start_time: int) -> bool:
    """True if pid is still the very process that was recorded (not a zombie
    and not a new process that reused the number)."""
    state = proc_state(pid, start_time)
    return state is not None and state[0] != "Z"


@dataclasses.dataclass(frozen=True)
class RunDirs:
    """Where one runtime keeps its records; all paths derive from run_dir."""
    run_dir: Path

    def container(self, cid: str) -> Path:
        return self.run_dir / "containers" / cid

    def pod(self, pod_id: str) -> Path:
        return self.run_dir / "pods" / pod_id

    def netns(self, pod_id: str) -> Path:
        return self.run_dir / "netns" / pod_id

    def ns_dir(self, pod_id: str) -> Path:
        return self.run_dir / "ns" / pod_id

    def container_ids(self) -> list[str]:
        try:
            return sorted(os.listdir(self.run_dir / "containers"))
        except FileNotFoundError:
            return []

    def pod_ids(self) -> list[str]:
        try:
            return sorted(os.listdir(self.run_dir / "pods"))
        except FileNotFoundError:
            return []
