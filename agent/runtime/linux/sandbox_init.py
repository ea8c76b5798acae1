"""Creating a pod's namespaces, as the zygote does it (no pause process).

    zygote ─fork─► S: unshare net+ipc+uts, set the hostname, lo up, pin each
                   namespace by bind-mounting /proc/self/ns/<type> onto a file
                   under the run dir (S shares the host's mount namespace, so
                   the pins are host mounts), then exits: the pins keep the
                   namespaces alive.
    With shareProcessNamespace, S also unshares pid and forks the pod's init
    (P): PID 1 of the pod's pid namespace, which only reaps. A pid namespace
    cannot outlive its init, so P is the one process a pod keeps besides its
    containers.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from agent.runtime.linux import namespaces
from agent.runtime.linux import syscalls as sc
from agent.runtime.linux.state import proc_start_time
from agent.runtime.linux.trace import mark


def run_sandbox(req: dict, fds: dict[str, int], reply_fd: int) -> None:
    """In process S (a fresh child of the zygote). Never returns."""
    try:
        flags = sc.CLONE_NEWIPC | sc.CLONE_NEWUTS
        if req["netns"]:
            flags |= sc.CLONE_NEWNET
        mark("S: forked")
        sc.unshare(flags)
        mark("S: unshared")
        sc.sethostname(req["hostname"])
        if req["netns"]:
            namespaces.loopback_up()
            namespaces.pin("net", Path(req["netns"]))
        namespaces.pin("ipc", Path(req["ipc"]))
        namespaces.pin("uts", Path(req["uts"]))
        mark("S: pinned")
        result: dict = {"ok": True}
        if req["share_pid"]:
            sc.unshare(sc.CLONE_NEWPID)
            pid = os.fork()
            if pid == 0:
                os.close(reply_fd)
                _pod_init()
            result = {"ok": True, "pod_init_pid": pid, "pod_init_start_time": proc_start_time(pid)}
        os.write(reply_fd, json.dumps(result).encode())
    except BaseException as e:  # noqa: BLE001
        try:
            os.write(reply_fd, json.dumps({"error": f"creating pod namespaces: {e}"}).encode())
        except OSError:
            pass
    finally:
        os._exit(0)


def _pod_init() -> None:
    """P: reap forever; SIGTERM ends it (and with it the pod's pid namespace)."""
    try:
        sc.set_process_name("skiff-pod-init")
        os.setsid()
        os.chdir("/")
        for fd in range(3, 1024):
            try:
                os.close(fd)
            except OSError:
                pass
        nul = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(nul, fd)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # so pause() wakes for a child
        while True:
            try:
                os.wait()
            except ChildProcessError:
                signal.pause()
    finally:
        os._exit(0)
