"""A tiny classic-BPF assembler for seccomp filters, keeping the kernel's names.

Instructions are (code, jt, jf, k) tuples, as struct sock_filter. Jumps name
labels; `assemble` turns them into the relative offsets classic BPF wants
(forward only, at most 255 instructions away) and refuses anything else.
"""
from __future__ import annotations

from dataclasses import dataclass

# <linux/bpf_common.h>
BPF_LD, BPF_JMP, BPF_RET = 0x00, 0x05, 0x06
BPF_W, BPF_ABS, BPF_K = 0x00, 0x20, 0x00
BPF_JEQ, BPF_JGE, BPF_JSET = 0x10, 0x30, 0x40

# <linux/seccomp.h>
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

# struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
OFFSET_NR = 0
OFFSET_ARCH = 4


def offset_arg_low(index: int) -> int:
    """The low 32 bits of args[index] (little-endian machines only)."""
    return 16 + 8 * index


@dataclass(frozen=True)
class Label:
    name: str


@dataclass(frozen=True)
class _Insn:
    code: int
    k: int
    jt: str | None = None     # label names; None = fall through
    jf: str | None = None


Item = _Insn | Label


def load(offset: int) -> _Insn:
    return _Insn(BPF_LD | BPF_W | BPF_ABS, offset)


def ret(value: int) -> _Insn:
    return _Insn(BPF_RET | BPF_K, value)


def jeq(k: int, *, true: str | None = None, false: str | None = None) -> _Insn:
    return _Insn(BPF_JMP | BPF_JEQ | BPF_K, k, true, false)


def jset(k: int, *, true: str | None = None, false: str | None = None) -> _Insn:
    return _Insn(BPF_JMP | BPF_JSET | BPF_K, k, true, false)


def label(name: str) -> Label:
    return Label(name)


def assemble(items: list[Item]) -> list[tuple[int, int, int, int]]:
    positions: dict[str, int] = {}
    insns: list[_Insn] = []
    for item in items:
        if isinstance(item, Label):
            if item.name in positions:
                raise ValueError(f"BPF label {item.name!r} defined twice")
            positions[item.name] = len(insns)
        else:
            insns.append(item)
    if len(insns) > 4096:   # BPF_MAXINSNS
        raise ValueError(f"BPF program of {len(insns)} instructions exceeds 4096")

    def offset(at: int, target: str | None) -> int:
        if target is None:
            return 0
        if target not in positions:
            raise ValueError(f"BPF label {target!r} is not defined")
        distance = positions[target] - at - 1
        if not 0 <= distance <= 255:
            raise ValueError(f"BPF jump from {at} to {target!r} spans {distance} (must be 0..255)")
        return distance

    return [(insn.code, offset(i, insn.jt), offset(i, insn.jf), insn.k) for i, insn in enumerate(insns)]
