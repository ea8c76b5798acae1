"""Skiff's own container runtime on the Linux kernel.

`LinuxRuntime` implements agent.runtime.interface.Runtime; `Zygote` is the
pre-forked process that forks every container (spawn it before grpc is
imported). The layers, by kernel concept, over `syscalls` (ctypes, C names):

    runtime.py, sandboxes.py, exec_io.py   asyncio side, state on disk (state.py)
    zygote.py                              fork server (pre-forked, single-threaded)
    container_init.py / sandbox_init.py / exec_init.py   what the zygote and the
                                           processes it forks do for each op
    namespaces.py, rootfs.py, process.py   the steps they are made of
    cgroups/, security/                    the cgroup Manager; caps/seccomp/ids
"""
from agent.runtime.linux.runtime import LinuxRuntime
from agent.runtime.linux.zygote import Zygote, ZygoteError

__all__ = ["LinuxRuntime", "Zygote", "ZygoteError"]
