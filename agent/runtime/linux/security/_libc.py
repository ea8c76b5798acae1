"""The few raw calls process security needs, through ctypes, keeping C names.

Python 3.11 wraps none of prctl, capget/capset or seccomp; these wrappers
raise OSError whose text names the call and its arguments, so a failure in a
container's setup says exactly which step the kernel refused.
"""
from __future__ import annotations

import ctypes
import functools
import os
from typing import Sequence

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.restype = ctypes.c_int
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long

# <linux/prctl.h>
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2

# <linux/capability.h>
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# capget/capset numbers per machine (both calls predate the generic table split).
_SYS_CAPGET = {"x86_64": 125, "aarch64": 90}
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}


def _fail(call: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{call}: {os.strerror(err)}")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0, *, name: str) -> int:
    """prctl(2); `name` is the option's C name, for the error text."""
    ret = _libc.prctl(option, arg2, arg3, arg4, arg5)
    if ret < 0:
        raise _fail(f"prctl({name}, {arg2}, {arg3})")
    return ret


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _machine() -> str:
    machine = os.uname().machine
    if machine not in _SYS_CAPGET:
        raise OSError(f"capget/capset: unsupported machine {machine!r}")
    return machine


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of the calling thread, as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc.syscall(_SYS_CAPGET[_machine()], ctypes.byref(header), data) < 0:
        raise _fail("capget(_LINUX_CAPABILITY_VERSION_3)")
    join = lambda field: getattr(data[0], field) | (getattr(data[1], field) << 32)  # noqa: E731
    return join("effective"), join("permitted"), join("inheritable")


def capset(*, effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.syscall(_SYS_CAPSET[_machine()], ctypes.byref(header), data) < 0:
        raise _fail(f"capset(effective={effective:#x}, permitted={permitted:#x}, inheritable={inheritable:#x})")


class SockFilter(ctypes.Structure):
    """struct sock_filter: one classic BPF instruction."""
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


@functools.lru_cache(maxsize=4)
def _filter_array(program: tuple[tuple[int, int, int, int], ...]) -> ctypes.Array:
    return (SockFilter * len(program))(*[SockFilter(*insn) for insn in program])


def install_seccomp_filter(program: Sequence[tuple[int, int, int, int]]) -> None:
    """prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog): the filter applies to
    this thread and everything it execs or forks from now on."""
    filters = _filter_array(tuple(program))
    prog = SockFprog(len(program), filters)
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), name="PR_SET_SECCOMP")
