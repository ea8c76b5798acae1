"""Skiff's default seccomp profile ("RuntimeDefault"), built as classic BPF by hand.

In the spirit of Docker's default profile: everything is allowed except the
calls that reach past the container — mounting (old and new mount APIs),
kernel modules, kexec, bpf, reboot, swap, the clock, the kernel log and
keyring, namespace creation and entry, raw I/O ports, and io_uring (a large
attack surface Docker also blocks). Denied calls fail with EPERM, so programs
see an ordinary permission error. ptrace and process_vm_* stay allowed, as in
Docker on kernels ≥ 4.8 (where ptrace can no longer bypass seccomp).

The program, in order:

    arch != this machine's AUDIT_ARCH      → kill the process (no i386/x32 back doors)
    nr has the x32 bit (x86_64)            → kill the process
    nr in DENIED                           → errno EPERM
    clone with any CLONE_NEW* flag         → errno EPERM (namespaces)
    clone3                                 → errno ENOSYS (its flags sit in a struct
                                             BPF cannot read; libc falls back to clone)
    personality(x) for x not in Docker's   → errno EPERM
      allowed personas
    anything else                          → allow
"""
from __future__ import annotations

import errno
import functools
import os
from typing import Sequence

from agent.runtime.linux.security import _libc, bpf
from agent.runtime.linux.security.syscall_numbers import ARCHES, X32_SYSCALL_BIT

RUNTIME_DEFAULT = "RuntimeDefault"
UNCONFINED = "Unconfined"
PROFILES = (RUNTIME_DEFAULT, UNCONFINED)

DENIED: tuple[str, ...] = (
    # mounts, old and new API: a container must not reshape its filesystem view
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr",
    # the kernel itself
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "create_module",
    "get_kernel_syms", "query_module", "bpf", "perf_event_open", "userfaultfd", "reboot", "swapon",
    "swapoff", "syslog", "acct", "lookup_dcookie", "quotactl", "quotactl_fd", "iopl", "ioperm",
    "nfsservctl", "uselib", "_sysctl", "ustat", "sysfs", "vhangup", "kcmp", "fanotify_init",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # the host clock
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    # file handles bypass the mount namespace; the keyring is not namespaced
    "open_by_handle_at", "name_to_handle_at", "keyctl", "add_key", "request_key",
    # new namespaces or someone else's
    "unshare", "setns",
)

# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
# (CLONE_NEWTIME is 0x80, inside clone()'s exit-signal byte, so clone cannot ask for it.)
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

# personality(2) arguments Docker allows: PER_LINUX, PER_LINUX32, UNAME26
# variants, and 0xffffffff (the query).
ALLOWED_PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)


class SeccompError(OSError):
    """The profile cannot be built or installed here."""


def default_program(*, machine: str | None = None) -> tuple[tuple[int, int, int, int], ...]:
    """The RuntimeDefault filter for `machine` (default: this one) as sock_filter tuples."""
    return _default_program(machine or os.uname().machine)


@functools.lru_cache(maxsize=4)
def _default_program(machine: str) -> tuple[tuple[int, int, int, int], ...]:
    # Cached: built once (in the zygote, by warm_up) rather than in every container's setup.
    if machine not in ARCHES:
        raise SeccompError(errno.ENOTSUP, f"seccomp RuntimeDefault: no syscall table for {machine!r}")
    audit_arch, numbers = ARCHES[machine]
    eperm = bpf.SECCOMP_RET_ERRNO | errno.EPERM
    prog: list[bpf.Item] = [
        bpf.load(bpf.OFFSET_ARCH),
        bpf.jeq(audit_arch, false="kill"),
        bpf.load(bpf.OFFSET_NR),
    ]
    if machine == "x86_64":
        prog.append(bpf.jset(X32_SYSCALL_BIT, true="kill"))
    for name in DENIED:
        if name in numbers:
            prog.append(bpf.jeq(numbers[name], true="eperm"))
    prog += [
        bpf.jeq(numbers["clone"], true="clone"),
        bpf.jeq(numbers["clone3"], true="enosys"),
        bpf.jeq(numbers["personality"], true="personality"),
        bpf.ret(bpf.SECCOMP_RET_ALLOW),

        bpf.label("clone"),
        bpf.load(bpf.offset_arg_low(0)),          # clone's flags are its first argument
        bpf.jset(CLONE_NAMESPACE_FLAGS, true="eperm", false="allow"),

        bpf.label("personality"),
        bpf.load(bpf.offset_arg_low(0)),
        *[bpf.jeq(persona, true="allow") for persona in ALLOWED_PERSONAS],
        bpf.label("eperm"),
        bpf.ret(eperm),
        bpf.label("enosys"),
        bpf.ret(bpf.SECCOMP_RET_ERRNO | errno.ENOSYS),
        bpf.label("kill"),
        bpf.ret(bpf.SECCOMP_RET_KILL_PROCESS),
        bpf.label("allow"),
        bpf.ret(bpf.SECCOMP_RET_ALLOW),
    ]
    return tuple(bpf.assemble(prog))


def check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"seccomp profile {profile!r}: expected one of {', '.join(PROFILES)}")


def install(program: Sequence[tuple[int, int, int, int]]) -> None:
    """Install a filter on the calling process. Needs no_new_privs set first,
    or CAP_SYS_ADMIN in the effective set."""
    _libc.install_seccomp_filter(program)
