"""The thin syscall layer under the Linux runtime.

Python 3.11 lacks unshare/setns/mount/pivot_root, so they come from libc
through ctypes. Each wrapper keeps the C name and argument order, so the code
above reads like the C it stands for (rubber-docker's habit), and a failure
raises OSError naming the syscall and its arguments, never a bare errno.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# clone(2) / unshare(2) / setns(2) flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24

# umount2(2) flags
MNT_DETACH = 2

# prctl(2) options
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

# openat2(2)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10

_SYS_pivot_root = 155
_SYS_openat2 = 437
_SYS_pidfd_open = 434
_SYS_pidfd_send_signal = 424

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                        ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long


def _check(ret: int, call: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{call}: {os.strerror(err)}")
    return ret


def _b(s: str | bytes | os.PathLike | None) -> bytes | None:
    if s is None:
        return None
    return os.fsencode(s)


def mount(source: str | None, target: str | os.PathLike, fstype: str | None,
          flags: int = 0, data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
           f"mount({source!r}, {os.fspath(target)!r}, {fstype!r}, {flags:#x}, {data!r})")


def umount2(target: str | os.PathLike, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount2({os.fspath(target)!r}, {flags})")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), f"setns({fd}, {nstype:#x})")


def pivot_root(new_root: str | os.PathLike, put_old: str | os.PathLike) -> None:
    _check(_libc.syscall(_SYS_pivot_root, _b(new_root), _b(put_old)),
           f"pivot_root({os.fspath(new_root)!r}, {os.fspath(put_old)!r})")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), f"sethostname({name!r})")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option}, {arg2})")


def set_process_name(name: str) -> None:
    """prctl(PR_SET_NAME): what ps/pgrep show as comm (15 bytes at most)."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _check(_libc.prctl(PR_SET_NAME, ctypes.cast(buf, ctypes.c_void_p).value or 0, 0, 0, 0),
           f"prctl(PR_SET_NAME, {name!r})")


def pidfd_open(pid: int, flags: int = 0) -> int:
    return _check(_libc.syscall(_SYS_pidfd_open, ctypes.c_int(pid), ctypes.c_uint(flags)),
                  f"pidfd_open({pid}, {flags})")


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    _check(_libc.syscall(_SYS_pidfd_send_signal, ctypes.c_int(pidfd), ctypes.c_int(sig),
                         None, ctypes.c_uint(0)),
           f"pidfd_send_signal({pidfd}, {sig})")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = _b(path)
    for _ in range(1000):
        ret = _libc.syscall(_SYS_openat2, ctypes.c_int(dirfd), raw, ctypes.byref(how),
                            ctypes.c_size_t(ctypes.sizeof(how)))
        # EAGAIN: a mount or rename anywhere on the machine raced a `..`
        # lookup under RESOLVE_IN_ROOT; the kernel asks us to simply retry.
        if ret >= 0 or ctypes.get_errno() != errno.EAGAIN:
            break
    return _check(ret, f"openat2({dirfd}, {path!r}, {flags:#x}, resolve={resolve:#x})")
