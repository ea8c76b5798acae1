"""Linux capability names as a pod's securityContext.capabilities may name
them: `NET_ADMIN` or `CAP_NET_ADMIN` (Kubernetes passes either to the runtime),
and `ALL`. The API refuses others; the agent maps the same names to bits."""
from __future__ import annotations

# <linux/capability.h>, in number order (CAP_CHECKPOINT_RESTORE, 40, is the last as of Linux 5.9).
NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
ALL_CAPS = frozenset(f"CAP_{name}" for name in NAMES)


def canonical(name: str) -> str:
    """`net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN` -> `CAP_NET_ADMIN` (`ALL` -> `CAP_ALL`)."""
    name = name.upper()
    return name if name.startswith("CAP_") else f"CAP_{name}"


def is_known(name: str) -> bool:
    return canonical(name) in ALL_CAPS or canonical(name) == "CAP_ALL"
