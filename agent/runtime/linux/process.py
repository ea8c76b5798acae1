"""The last steps of every process Skiff runs inside a container.

Shared by a container's main process and by exec: join the cgroup, wire
stdio, put signal dispositions back to the defaults a program expects,
change directory, apply the security settings, execvpe. A failure before
execve is written to a close-on-exec error pipe, so the runtime learns either
"exec succeeded" (EOF) or the reason, in Docker's words, before start()
returns.
"""
from __future__ import annotations

import errno
import os
import signal
from typing import Sequence

from agent.runtime.interface import SecurityConfig
from agent.runtime.linux.security import apply_process_security, apply_rlimits
from agent.runtime.linux import trace
from agent.runtime.linux.trace import mark

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def join_cgroup(procs_files: Sequence[str], *, pid: int | None = None) -> None:
    """Move a process (default: the calling one) into the container's cgroup,
    every hierarchy. Done before the container's processes fork, so each is
    born inside it and counted against its pids and memory limits from the
    start. On cgroup v1 the first write waits for an RCU grace period
    (milliseconds): the agent calls this in a thread."""
    text = str(os.getpid() if pid is None else pid).encode()
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text)
        except OSError as e:
            raise OSError(e.errno, f"joining cgroup: write {text.decode()} to {path}: {e.strerror}") from None
        finally:
            os.close(fd)


def reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ, and an exec'd program inherits
    ignored signals (which breaks `yes | head`); handled ones are reset by
    execve itself. So: every ignored signal back to the default, and an
    empty mask."""
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP) and signal.getsignal(sig) is signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def security_from_dict(d: dict) -> SecurityConfig:
    caps = d.get("capabilities")
    return SecurityConfig(
        uid=d.get("uid", 0), gid=d.get("gid", 0),
        supplemental_gids=tuple(d.get("supplemental_gids", ())),
        privileged=d.get("privileged", False), read_only_rootfs=d.get("read_only_rootfs", False),
        no_new_privileges=d.get("no_new_privileges", True),
        capabilities=None if caps is None else frozenset(caps),
        seccomp=d.get("seccomp", "RuntimeDefault"))


def apply_security(cfg: SecurityConfig) -> None:
    """rlimits, ids, capabilities, no_new_privs, seccomp: the security
    package's job (its order is explained there); this is the one call site.
    rlimits first, while CAP_SYS_RESOURCE is still held."""
    apply_rlimits()
    apply_process_security(cfg)


def build_env(env: Sequence[Sequence[str]], *, hostname: str | None) -> dict[str, str]:
    out = {"PATH": DEFAULT_PATH}
    if hostname:
        out["HOSTNAME"] = hostname
    out.update({k: v for k, v in env})
    return out


class ExecError(Exception):
    """The program cannot be started; str() is the user-facing reason."""


def enter_workdir(path: str) -> None:
    """chdir into the working directory, creating it like runc does (we are
    already inside the container's root, so this cannot touch the host)."""
    path = path or "/"
    try:
        os.chdir(path)
    except FileNotFoundError:
        os.makedirs(path, 0o755, exist_ok=True)
        os.chdir(path)


def lookup(argv: Sequence[str], env: dict[str, str]) -> str:
    """argv[0] resolved against the container's PATH (not the caller's), as
    execvpe does; the error text is Docker's."""
    if not argv:
        raise ExecError("no command given (args is empty and the image has no entrypoint or cmd)")
    name = argv[0]
    if "/" in name:
        if not os.path.exists(name):
            raise ExecError(exec_error_text(name, FileNotFoundError(errno.ENOENT, "")))
        return name
    for d in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise ExecError(exec_error_text(name, FileNotFoundError(errno.ENOENT, "")))


def spawn(*, path: str, argv: Sequence[str], env: dict[str, str], stdio: tuple[int, int, int]) -> int:
    """posix_spawn the program: its own session, default signal dispositions
    (Python ignores SIGPIPE and SIGXFSZ), an empty mask, stdio wired."""
    actions = [(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(stdio)]
    try:
        return os.posix_spawn(path, list(argv), env, file_actions=actions, setsid=True,
                              setsigdef=[s for s in signal.valid_signals()
                                         if s not in (signal.SIGKILL, signal.SIGSTOP)],
                              setsigmask=())
    except OSError as e:
        raise ExecError(exec_error_text(argv[0], e)) from None


def exec_error_text(argv0: str, err: OSError) -> str:
    """What Docker/runc say, so users recognize it."""
    if "/" not in argv0 and err.errno == errno.ENOENT:
        return f'exec: "{argv0}": executable file not found in $PATH'
    if err.errno == errno.ENOENT:
        return f'exec: "{argv0}": stat {argv0}: no such file or directory'
    if err.errno == errno.EACCES:
        return f'exec: "{argv0}": permission denied'
    return f'exec: "{argv0}": {err.strerror}'


def report(errfd: int, message: str) -> None:
    """Write a failure to the error pipe (best effort: the reader may be gone)."""
    try:
        os.write(errfd, message.encode(errors="replace")[:65536])
    except OSError:
        pass


def close_fds_except(keep: set[int]) -> None:
    """Close every fd from 3 up except those in keep (and the trace file's)."""
    low = 3
    for fd in sorted(keep | {trace.fd()}):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, 1 << 16)


def exec_process(*, argv: Sequence[str], env: dict[str, str], working_dir: str,
                 security: SecurityConfig, errfd: int, keep_fds: Sequence[int] = ()) -> None:
    """Become the container's program. Never returns: on failure the reason
    goes to errfd (close-on-exec, so success is its EOF) and we _exit(127)."""
    try:
        reset_signals()
        mark("C: signals reset")
        # Only 0, 1, 2 (and errfd until execve) reach the program.
        close_fds_except({errfd, *keep_fds})
        os.set_inheritable(errfd, False)
        if not argv:
            raise ValueError("no command given (args is empty and the image has no entrypoint or cmd)")
        try:
            os.chdir(working_dir or "/")
        except FileNotFoundError:
            os.makedirs(working_dir, 0o755, exist_ok=True)
            os.chdir(working_dir)
        apply_security(security)   # last before exec: seccomp comes last inside it
        mark("C: security applied")
        try:
            os.execvpe(argv[0], list(argv), env)
        except OSError as e:
            report(errfd, exec_error_text(argv[0], e))
    except BaseException as e:  # noqa: BLE001 - everything must reach the runtime
        report(errfd, f"{type(e).__name__}: {e}" if not isinstance(e, OSError) else str(e))
    finally:
        os._exit(127)
