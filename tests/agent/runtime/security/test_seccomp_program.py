"""The RuntimeDefault filter, run through a small classic-BPF interpreter.

The kernel test (test_process_security.py) shows the filter works here; this
one checks every branch of the program for both architectures, including the
ones this machine cannot produce (a foreign arch, x32, aarch64).
"""
from __future__ import annotations

import errno
import struct

import pytest

from agent.runtime.linux.security import bpf
from agent.runtime.linux.security.seccomp import DENIED, default_program
from agent.runtime.linux.security.syscall_numbers import ARCHES

ALLOW = bpf.SECCOMP_RET_ALLOW
KILL = bpf.SECCOMP_RET_KILL_PROCESS
EPERM = bpf.SECCOMP_RET_ERRNO | errno.EPERM
ENOSYS = bpf.SECCOMP_RET_ERRNO | errno.ENOSYS
CLONE_NEWUSER, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x40000000, 17
CLONE_THREAD_FLAGS = 0x3D0F00        # what pthread_create passes (VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|...)


def run(program, *, arch: int, nr: int, args=(0,) * 6) -> int:
    """Evaluate sock_filter tuples against one struct seccomp_data (little-endian)."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *args)
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        cls = code & 0x07
        if cls == bpf.BPF_LD:
            assert code == bpf.BPF_LD | bpf.BPF_W | bpf.BPF_ABS
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif cls == bpf.BPF_JMP:
            op = code & 0xF0
            taken = {bpf.BPF_JEQ: acc == k, bpf.BPF_JGE: acc >= k, bpf.BPF_JSET: bool(acc & k)}[op]
            pc += 1 + (jt if taken else jf)
        elif cls == bpf.BPF_RET:
            return k
        else:
            raise AssertionError(f"unexpected BPF code {code:#x}")


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_denied_calls_get_eperm_and_the_rest_is_allowed(machine):
    arch, numbers = ARCHES[machine]
    program = default_program(machine=machine)
    denied_here = [n for n in DENIED if n in numbers]
    assert {"mount", "umount2", "unshare", "setns", "bpf", "kexec_load", "init_module", "reboot"} <= set(denied_here)
    for name in denied_here:
        assert run(program, arch=arch, nr=numbers[name]) == EPERM, name
    denied_numbers = {numbers[n] for n in denied_here} | {numbers["clone"], numbers["clone3"], numbers["personality"]}
    for nr in range(0, 460):
        if nr not in denied_numbers:
            assert run(program, arch=arch, nr=nr) == ALLOW, nr


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_clone_may_not_create_namespaces_and_clone3_falls_back(machine):
    arch, numbers = ARCHES[machine]
    program = default_program(machine=machine)
    clone = numbers["clone"]
    assert run(program, arch=arch, nr=clone, args=(SIGCHLD, 0, 0, 0, 0, 0)) == ALLOW            # fork()
    assert run(program, arch=arch, nr=clone, args=(CLONE_THREAD_FLAGS, 0, 0, 0, 0, 0)) == ALLOW  # a thread
    assert run(program, arch=arch, nr=clone, args=(SIGCHLD | CLONE_NEWUSER, 0, 0, 0, 0, 0)) == EPERM
    assert run(program, arch=arch, nr=clone, args=(CLONE_NEWNET, 0, 0, 0, 0, 0)) == EPERM
    assert run(program, arch=arch, nr=numbers["clone3"]) == ENOSYS


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_personality_only_for_docker_s_allowed_personas(machine):
    arch, numbers = ARCHES[machine]
    program = default_program(machine=machine)
    for persona in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert run(program, arch=arch, nr=numbers["personality"], args=(persona, 0, 0, 0, 0, 0)) == ALLOW
    # ADDR_NO_RANDOMIZE would switch off ASLR
    assert run(program, arch=arch, nr=numbers["personality"], args=(0x0040000, 0, 0, 0, 0, 0)) == EPERM


def test_foreign_architecture_and_x32_are_killed():
    arch_x86, _ = ARCHES["x86_64"]
    program = default_program(machine="x86_64")
    audit_arch_i386 = 0x40000003
    assert run(program, arch=audit_arch_i386, nr=1) == KILL
    assert run(program, arch=ARCHES["aarch64"][0], nr=1) == KILL
    x86_write, aarch64_write = 1, 64
    assert run(program, arch=arch_x86, nr=x86_write) == ALLOW
    assert run(program, arch=arch_x86, nr=0x40000000 | x86_write) == KILL        # the x32 ABI
    assert run(default_program(machine="aarch64"), arch=arch_x86, nr=aarch64_write) == KILL


def test_assembler_refuses_bad_jumps():
    with pytest.raises(ValueError, match="not defined"):
        bpf.assemble([bpf.jeq(1, true="nowhere"), bpf.ret(0)])
    far = [bpf.jeq(1, true="end")] + [bpf.ret(0)] * 300 + [bpf.label("end"), bpf.ret(0)]
    with pytest.raises(ValueError, match="spans"):
        bpf.assemble(far)


def test_unknown_machine_is_a_clear_error():
    with pytest.raises(OSError, match="riscv64"):
        default_program(machine="riscv64")
