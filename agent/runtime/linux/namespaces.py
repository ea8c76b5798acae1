"""Namespaces: entering, pinning and releasing them.

A pod's net, ipc and uts namespaces are created once (in a child of the
zygote) and kept alive without any process by bind-mounting their
/proc/self/ns/<type> file onto a file under the run dir ("pinning", as
`ip netns add` does). Containers setns() into the pinned files; removing the
sandbox unmounts them, and the kernel frees a namespace once nothing refers
to it any more.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from pathlib import Path

from agent.runtime.linux import syscalls as sc

NS_FLAGS = {
    "net": sc.CLONE_NEWNET, "ipc": sc.CLONE_NEWIPC, "uts": sc.CLONE_NEWUTS,
    "pid": sc.CLONE_NEWPID, "mnt": sc.CLONE_NEWNS, "cgroup": sc.CLONE_NEWCGROUP,
}


def enter(path: str | os.PathLike, kind: str) -> None:
    """setns() into the namespace pinned (or held by a process) at path."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(fd, NS_FLAGS[kind])
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror} (entering {kind} namespace {os.fspath(path)})") from None
    finally:
        os.close(fd)


def enter_all(paths: dict[str, str]) -> None:
    """setns() into several namespaces at once. All files are opened first:
    once the mount namespace is entered, host paths (the pinned files, and
    /proc/<pid> of the host pid namespace) are no longer reachable."""
    fds = {kind: os.open(p, os.O_RDONLY | os.O_CLOEXEC) for kind, p in paths.items()}
    try:
        # mnt last: it switches root and cwd to the container's.
        for kind in sorted(fds, key=lambda k: k == "mnt"):
            try:
                sc.setns(fds[kind], NS_FLAGS[kind])
            except OSError as e:
                raise OSError(e.errno, f"{e.strerror} (entering {kind} namespace "
                                       f"{paths[kind]})") from None
    finally:
        for fd in fds.values():
            os.close(fd)


def pin(kind: str, target: Path, *, pid: int | str = "self") -> None:
    """Bind-mount /proc/<pid>/ns/<kind> onto target (a new empty file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
    os.close(fd)
    sc.mount(f"/proc/{pid}/ns/{kind}", target, None, sc.MS_BIND)


def unpin(target: Path) -> None:
    """Undo pin(); nothing there is fine (idempotent)."""
    try:
        sc.umount2(target, sc.MNT_DETACH)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    try:
        target.unlink()
    except FileNotFoundError:
        pass


def is_pinned(target: Path) -> bool:
    """A pinned file shows as nsfs: its device differs from its directory's."""
    try:
        return os.stat(target).st_dev != os.stat(target.parent).st_dev
    except FileNotFoundError:
        return False


def loopback_up() -> None:
    """ip link set lo up, in the current network namespace (SIOCSIFFLAGS):
    a new net namespace starts with lo down, and pods expect localhost."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh14x", b"lo", flags | IFF_UP))
