"""Running a command inside a running container, as the zygote does it.

    zygote ─fork─► X ─fork─► E1: setns into the container's user-visible
                   │ exits     namespaces (through /proc/<init>/ns/*), joins
                   │ at once   its cgroup, forks E2 and waits for it; reports
                   │           E2's pid, then its exit code, on the status pipe
                   │           └─fork─► E2: in the container's pid namespace;
                   │                    stdio (pipes or a pty), security, exec.
X exits at once so the zygote never waits on a long-lived command; E1 is
reparented to the zygote (a subreaper), which reaps it.
"""
from __future__ import annotations

import fcntl
import json
import os
import termios

from agent.runtime.linux import namespaces, process


def run_exec(req: dict, fds: dict[str, int], reply_fd: int) -> None:
    """In process X (a fresh child of the zygote). Never returns."""
    try:
        if os.fork() == 0:
            os.close(reply_fd)
            _exec_parent(req, fds)
        os.write(reply_fd, b'{"ok": true}')
    finally:
        os._exit(0)


def _exec_parent(req: dict, fds: dict[str, int]) -> None:
    """E1: enter, fork, wait, report. Never returns."""
    status = fds["status"]
    try:
        os.setsid()
        # The cgroup first: its host path is unreachable once inside the
        # container's mount namespace.
        process.join_cgroup(req["cgroup_procs"])
        namespaces.enter_all(req["ns"])
        pid = os.fork()
        if pid == 0:
            _exec_child(req, fds)
        os.write(status, json.dumps({"pid": pid}).encode() + b"\n")
        for key in ("stdin", "stdout", "stderr", "err"):
            os.close(fds[key])
        _, st = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(st)
        os.write(status, json.dumps({"exit_code": code if code >= 0 else 128 - code}).encode() + b"\n")
    except BaseException as e:  # noqa: BLE001
        process.report(fds["err"], f"exec: {e}")
    finally:
        os._exit(0)


def _exec_child(req: dict, fds: dict[str, int]) -> None:
    """E2: the command, inside the container."""
    try:
        os.setsid()
        if req["tty"]:
            fcntl.ioctl(fds["stdin"], termios.TIOCSCTTY, 0)
        os.dup2(fds["stdin"], 0)
        os.dup2(fds["stdout"], 1)
        os.dup2(fds["stderr"], 2)
        env = process.build_env(req["env"], hostname=None)
        if req["tty"]:
            env.setdefault("TERM", "xterm")
    except BaseException as e:  # noqa: BLE001
        process.report(fds["err"], f"exec: {e}")
        os._exit(126)
    process.exec_process(argv=req["args"], env=env, working_dir=req["working_dir"],
                         security=process.security_from_dict(req["security"]), errfd=fds["err"])
