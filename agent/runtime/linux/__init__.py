"""Skiff's own container runtime on the Linux kernel.

`LinuxRuntime` implements agent.runtime.interface.Runtime; `Zygote` is the
agent's handle on the node's zygote, the process that forks and watches
every container. The layers, by kernel concept, over `syscalls` (ctypes, C names):

    runtime.py, sandboxes.py, exec_io.py   asyncio side, state on disk (state.py)
    zygote.py                              fork server and monitor (single-threaded)
    container_init.py / sandbox_init.py / exec_init.py   what the zygote and the
                                           processes it forks do for each op
    namespaces.py, rootfs.py, process.py   the steps they are made of
    cgroups/, security/                    the cgroup Manager; caps/seccomp/ids
"""
__all__ = ["LinuxRuntime", "Zygote", "ZygoteError"]


def __getattr__(name: str):
    # Imported on first use: the zygote process imports this package too, and
    # should not carry the asyncio side (every page it maps, each fork copies).
    if name == "LinuxRuntime":
        from agent.runtime.linux.runtime import LinuxRuntime
        return LinuxRuntime
    if name in ("Zygote", "ZygoteError"):
        from agent.runtime.linux import zygote
        return getattr(zygote, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
