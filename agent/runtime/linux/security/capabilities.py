"""Linux capabilities: names ↔ numbers, Kubernetes' add/drop rules, and applying a set.

Manifests name capabilities without the CAP_ prefix ("NET_BIND_SERVICE",
"ALL"); SecurityConfig and /proc speak in full names ("CAP_NET_BIND_SERVICE").
`effective_capabilities` turns a securityContext into the set a container
gets; `apply_capabilities` makes the calling process hold exactly that set
(bounding, effective, permitted; inheritable and ambient only for what must
survive execve as a non-root user).

Why each set matters across execve (capabilities(7)): for uid 0 the new
permitted set is inheritable | bounding, so the bounding set is what limits
root in a container; for any other uid it is only the ambient set, so a
non-root container has no capabilities unless some are raised as ambient.
Inheritable stays empty otherwise (the fix for CVE-2022-24769).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterable

from agent.runtime.linux.security import _libc

# <linux/capability.h>, in number order; CAP_CHECKPOINT_RESTORE (40) is the last as of Linux 5.9+.
_NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
CAPABILITIES: dict[str, int] = {f"CAP_{name}": number for number, name in enumerate(_NAMES)}
ALL_CAPABILITIES: frozenset[str] = frozenset(CAPABILITIES)

# Docker's (and containerd's CRI) default set for an unprivileged container.
DEFAULT_CAPABILITIES: frozenset[str] = frozenset(f"CAP_{n}" for n in (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
    "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"))

_CAP_LAST_CAP = Path("/proc/sys/kernel/cap_last_cap")


class CapabilityError(OSError):
    """A capability could not be granted or changed; the text names which."""


def cap_name(name: str) -> str:
    """"net_bind_service", "NET_BIND_SERVICE" or "CAP_NET_BIND_SERVICE" → "CAP_NET_BIND_SERVICE"."""
    upper = name.strip().upper()
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if full not in CAPABILITIES:
        raise ValueError(f"unknown capability {name!r}")
    return full


def cap_number(name: str) -> int:
    return CAPABILITIES[cap_name(name)]


def names_of(mask: int) -> frozenset[str]:
    """A 64-bit mask (CapEff etc. in /proc/PID/status) → the names of its known bits."""
    return frozenset(n for n, bit in CAPABILITIES.items() if mask >> bit & 1)


def mask_of(names: Iterable[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << cap_number(name)
    return mask


def effective_capabilities(*, add: Iterable[str] = (), drop: Iterable[str] = (),
                           privileged: bool = False) -> frozenset[str]:
    """The set a container gets, with Kubernetes' (containerd's) rules:
    privileged → every capability; else Docker's default, then "ALL" in add
    → every one, "ALL" in drop → none (drop ALL wins over add ALL), then the
    named additions, then the named drops (a drop wins over an add)."""
    add, drop = list(add), list(drop)
    if privileged:
        return ALL_CAPABILITIES
    caps = set(DEFAULT_CAPABILITIES)
    if any(a.strip().upper() == "ALL" for a in add):
        caps = set(ALL_CAPABILITIES)
    if any(d.strip().upper() == "ALL" for d in drop):
        caps = set()
    caps |= {cap_name(a) for a in add if a.strip().upper() != "ALL"}
    caps -= {cap_name(d) for d in drop if d.strip().upper() != "ALL"}
    return frozenset(caps)


@functools.lru_cache(maxsize=1)
def last_cap() -> int:
    """The highest capability this kernel knows (newer names may be unknown to it).
    Cached: it cannot change while the kernel runs, and /proc reads are slow."""
    try:
        return int(_CAP_LAST_CAP.read_text())
    except OSError:
        return max(CAPABILITIES.values())


def bounding_set() -> frozenset[str]:
    """The calling process's bounding set: all it could ever hand to a container."""
    return frozenset(n for n, bit in CAPABILITIES.items() if bit <= last_cap()
                     and _libc.prctl(_libc.PR_CAPBSET_READ, bit, name="PR_CAPBSET_READ") == 1)


def apply_capabilities(*, keep: frozenset[str], ambient: frozenset[str] = frozenset()) -> None:
    """Make this process hold exactly `keep` (bounding, effective, permitted),
    with `ambient` (a subset) also inheritable and ambient so it survives
    execve as a non-root user. Call after setuid (with PR_SET_KEEPCAPS) and
    before no_new_privs and seccomp."""
    top = last_cap()
    keep = frozenset(cap_name(c) for c in keep)
    ambient = frozenset(cap_name(c) for c in ambient)
    if not ambient <= keep:
        raise CapabilityError(f"ambient capabilities {sorted(ambient - keep)} are not in the kept set")
    # Capabilities newer than the running kernel cannot be held; there is nothing to grant.
    want = mask_of(c for c in keep if CAPABILITIES[c] <= top)
    amb = mask_of(c for c in ambient if CAPABILITIES[c] <= top)
    _, permitted, inheritable = _libc.capget()
    if want & ~permitted:
        raise CapabilityError(f"cannot grant {sorted(names_of(want & ~permitted))}: not held by the runtime "
                              f"(its permitted set is {permitted:#x})")
    # setuid() to a non-root uid cleared the effective set (PR_SET_KEEPCAPS only
    # keeps the permitted one); PR_CAPBSET_DROP needs CAP_SETPCAP effective.
    _libc.capset(effective=permitted, permitted=permitted, inheritable=inheritable)
    for bit in range(top + 1):
        if not want >> bit & 1:
            _libc.prctl(_libc.PR_CAPBSET_DROP, bit, name=f"PR_CAPBSET_DROP {_cap_label(bit)}")
    # Ambient capabilities must be both permitted and inheritable when raised.
    _libc.capset(effective=want, permitted=want, inheritable=amb)
    _libc.prctl(_libc.PR_CAP_AMBIENT, _libc.PR_CAP_AMBIENT_CLEAR_ALL, name="PR_CAP_AMBIENT_CLEAR_ALL")
    for bit in range(top + 1):
        if amb >> bit & 1:
            _libc.prctl(_libc.PR_CAP_AMBIENT, _libc.PR_CAP_AMBIENT_RAISE, bit,
                        name=f"PR_CAP_AMBIENT_RAISE {_cap_label(bit)}")


def _cap_label(bit: int) -> str:
    return f"CAP_{_NAMES[bit]}" if bit < len(_NAMES) else str(bit)
