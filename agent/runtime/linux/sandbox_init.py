"""Creating a pod's namespaces, as the zygote does it (no pause process).

The zygote unshares net+ipc+uts, sets the hostname, brings lo up and pins
each namespace by bind-mounting /proc/self/ns/<type> onto a file under the
run dir (the zygote lives in the host's mount namespace, so the pins are host
mounts), then returns to its own namespaces: the pins alone keep the pod's
alive. With shareProcessNamespace it also unshares pid and forks the pod's
init (P): PID 1 of the pod's pid namespace, which only reaps. A pid namespace
cannot outlive its init, so P is the one process a pod keeps besides its
containers.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

from agent.runtime.linux import namespaces
from agent.runtime.linux import syscalls as sc
from agent.runtime.linux.state import proc_start_time
from agent.runtime.linux.trace import mark


def sandbox_in_zygote(req: dict, fds: dict[str, int], ctx) -> dict:
    """In the zygote itself: new net/ipc/uts namespaces, pinned, then back
    into the zygote's own (ctx). The pins are bind mounts in the host's mount
    namespace, which is the zygote's. No process is forked unless the pod
    shares one pid namespace."""
    pid = -1
    try:
        try:
            flags = sc.CLONE_NEWIPC | sc.CLONE_NEWUTS
            if req["netns"]:
                flags |= sc.CLONE_NEWNET
            sc.unshare(flags)
            mark("zygote: sandbox namespaces")
            sc.sethostname(req["hostname"])
            if req["netns"]:
                namespaces.loopback_up()
                namespaces.pin("net", Path(req["netns"]))
            namespaces.pin("ipc", Path(req["ipc"]))
            namespaces.pin("uts", Path(req["uts"]))
            mark("zygote: sandbox pinned")
            if not req["share_pid"]:
                return {"ok": True}
            sc.unshare(sc.CLONE_NEWPID)
            pid = os.fork()
            if pid == 0:
                try:
                    ctx.forget_zygote()
                finally:
                    _pod_init()
        finally:
            if pid != 0:
                ctx.restore_namespaces()
        return {"ok": True, "pod_init_pid": pid, "pod_init_start_time": proc_start_time(pid)}
    except Exception as e:  # noqa: BLE001 - the caller undoes what was pinned
        return {"error": f"creating pod namespaces: {e}"}


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
