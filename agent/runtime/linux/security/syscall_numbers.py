"""Syscall numbers the seccomp profile names, per architecture.

Taken from the kernel's tables (asm/unistd_64.h for x86_64,
asm-generic/unistd.h for aarch64). A name missing for an architecture does
not exist there, so there is nothing to deny.
"""
from __future__ import annotations

X86_64: dict[str, int] = {
    "mount": 165, "umount2": 166, "pivot_root": 155, "move_mount": 429, "open_tree": 428,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "create_module": 174, "get_kernel_syms": 177, "query_module": 178,
    "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "reboot": 169, "swapon": 167,
    "swapoff": 168, "syslog": 103, "acct": 163, "settimeofday": 164, "clock_settime": 227,
    "clock_adjtime": 305, "adjtimex": 159, "open_by_handle_at": 304, "name_to_handle_at": 303,
    "keyctl": 250, "add_key": 248, "request_key": 249, "unshare": 272, "setns": 308,
    "lookup_dcookie": 212, "quotactl": 179, "quotactl_fd": 443, "iopl": 172, "ioperm": 173,
    "nfsservctl": 180, "uselib": 134, "_sysctl": 156, "ustat": 136, "sysfs": 139, "vhangup": 153,
    "kcmp": 312, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "fanotify_init": 300, "clone": 56, "clone3": 435, "personality": 135,
}

AARCH64: dict[str, int] = {
    "mount": 40, "umount2": 39, "pivot_root": 41, "move_mount": 429, "open_tree": 428,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
    "delete_module": 106, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "reboot": 142,
    "swapon": 224, "swapoff": 225, "syslog": 116, "acct": 89, "settimeofday": 170,
    "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171, "open_by_handle_at": 265,
    "name_to_handle_at": 264, "keyctl": 219, "add_key": 217, "request_key": 218, "unshare": 97,
    "setns": 268, "lookup_dcookie": 18, "quotactl": 60, "quotactl_fd": 443, "nfsservctl": 42,
    "vhangup": 58, "kcmp": 272, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "fanotify_init": 262, "clone": 220, "clone3": 435, "personality": 92,
}

# AUDIT_ARCH_* from <linux/audit.h>: what seccomp_data.arch holds.
ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (0xC000003E, X86_64),
    "aarch64": (0xC00000B7, AARCH64),
}
X32_SYSCALL_BIT = 0x40000000   # x86_64's x32 ABI: same arch value, numbers with this bit
