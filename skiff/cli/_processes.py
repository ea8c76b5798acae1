"""Process and host helpers for `skiff up` / `skiff down`: pid files that
survive PID reuse (the PID is stored with the process's start time), stopping
a process by PID with SIGTERM then SIGKILL, and the checks `down --purge`
makes before touching shared or mounted things.
"""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":  # a zombie has exited already
        return None
    return fields[19]


def read_pid_file(path: Path, *, marker: str) -> int | None:
    """The PID in `path` if that very process still runs: same start time as
    recorded, and `marker` in its command line."""
    try:
        pid_text, started = path.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if start_time(pid) != started:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    return pid if marker in cmdline else None


def write_pid_file(path: Path, pid: int) -> None:
    """Record the PID with its start time (atomically), for read_pid_file."""
    started = start_time(pid) or "0"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid} {started}\n")
    os.replace(tmp, path)


def last_log_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def port_taken(port: int, *, host: str = "127.0.0.1") -> bool:
    if host != "127.0.0.1":
        # Another address is tried by bind(), which sends nothing: a connect() to an
        # address not (yet) on this machine would go out by the default route.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError as exc:
                return exc.errno == errno.EADDRINUSE
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def stop_pid(pid: int, *, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM, then SIGKILL after `timeout`; waits until the process is gone."""
    started = start_time(pid)
    if started is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while start_time(pid) == started:
        if proc is not None and proc.poll() is not None:
            return
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = float("inf")
        time.sleep(0.05)


def other_agents() -> list[int]:
    """PIDs of skiff agents still running on this machine (another cluster's)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"agent.main" in argv or any(a.endswith(b"skiff-agent") for a in argv[:2]):
            if start_time(int(proc.name)) is not None:
                out.append(int(proc.name))
    return out


def mounts_under(paths: list[Path]) -> list[str]:
    """Mount points at or below any of `paths` (rmtree must never cross one)."""
    out = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(p) or point.startswith(str(p) + "/") for p in paths):
            out.append(point)
    return out


def remove_empty_cgroups(name: str, *, root: Path = Path("/sys/fs/cgroup")) -> list[str]:
    """rmdir the cgroup `name` wherever it is (see cgroups.remove_empty)."""
    from agent.runtime.linux.cgroups import remove_empty
    return remove_empty(name, root=root)
