"""What a process inside a Skiff container sees: its own pid, uts, mount and
cgroup namespaces, a masked /proc, a minimal /dev, a read-only /sys."""
from __future__ import annotations

import asyncio
import os

import pytest

from agent.runtime.interface import Resources, SecurityConfig, State

pytestmark = pytest.mark.root


def test_the_program_is_pid_1_and_the_hostname_is_the_pods(runtime):
    sb = runtime.sandbox_config(hostname="web-7f9c")
    st, log, _ = asyncio.run(runtime.run(
        ("sh", "-c", "echo pid=$$; hostname; cat /proc/1/comm"), sandbox=sb))
    assert st.state is State.EXITED and st.exit_code == 0, log
    lines = log.split()
    # The program is PID 1 of its own pid namespace, as in Kubernetes (the
    # shell execs its last command in place, so PID 1 is `cat` by then).
    assert lines == ["pid=1", "web-7f9c", "cat"]


def test_host_processes_are_invisible(runtime):
    st, log, _ = asyncio.run(runtime.run(("ps", "-o", "pid,comm")))
    assert st.exit_code == 0, log
    pids = sorted(int(line.split()[0]) for line in log.splitlines()[1:])
    # ps itself, as PID 1: nothing of the host (pytest, the zygote, ...).
    assert pids == [1], log
    assert "pytest" not in log and "python" not in log


def test_memory_limit_is_visible_in_the_containers_cgroup(runtime):
    st, log, _ = asyncio.run(runtime.run(
        ("cat", "/proc/self/cgroup"), resources=Resources(memory_limit_bytes=64 * 2**20)))
    assert st.exit_code == 0
    # The cgroup namespace makes the container's own cgroup its root.
    assert "memory:/\n" in log, log
    # Through /proc the limit is visible to the container's processes too.
    st, log, _ = asyncio.run(runtime.run(
        ("sh", "-c", "mkdir -p /cg && mount -t cgroup -o memory none /cg 2>&1 || true; "
                     "cat /cg/memory.limit_in_bytes 2>&1"),
        resources=Resources(memory_limit_bytes=64 * 2**20),
        security=SecurityConfig(privileged=True, seccomp="Unconfined",
                                capabilities=frozenset({"CAP_SYS_ADMIN"}))))
    assert str(64 * 2**20) in log, log


def test_dev_holds_only_the_safe_devices(runtime):
    st, log, _ = asyncio.run(runtime.run(("ls", "/dev")))
    assert st.exit_code == 0
    assert sorted(log.split()) == sorted(
        ["console", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm",
         "stderr", "stdin", "stdout", "tty", "urandom", "zero"])


MASKED_FILES = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug")


def test_masked_proc_files_read_empty(runtime):
    present = [p for p in MASKED_FILES if os.path.exists(p)]
    # This kernel may lack some (no kcore here); those that exist must be masked.
    assert "/proc/timer_list" in present and os.path.getsize("/proc/timer_list") == 0
    assert len(open("/proc/timer_list", "rb").read()) > 0   # readable on the host
    script = "; ".join(f"echo {p}=$(cat {p} 2>/dev/null | wc -c)" for p in present)
    script += "; echo acpi=$(ls -A /proc/acpi 2>/dev/null | wc -l)"
    st, log, _ = asyncio.run(runtime.run(("sh", "-c", script)))
    assert st.exit_code == 0, log
    assert log.split() == [f"{p}=0" for p in present] + ["acpi=0"]


def test_writes_to_proc_sys_sysrq_and_sys_are_denied(runtime):
    targets = ["/proc/sys/kernel/panic", "/sys/kernel/uevent_helper", "/sys/skiff-test"]
    if os.path.exists("/proc/sysrq-trigger"):
        targets.append("/proc/sysrq-trigger")
    script = "; ".join(f"(echo 0 > {t}) 2>/dev/null && echo {t}=written || echo {t}=denied"
                       for t in targets)
    st, log, _ = asyncio.run(runtime.run(("sh", "-c", script)))
    assert log.split() == [f"{t}=denied" for t in targets], log


def test_read_only_root_filesystem(runtime):
    st, log, _ = asyncio.run(runtime.run(
        ("sh", "-c", "touch /x 2>/dev/null && echo root=rw || echo root=ro; "
                     "touch /dev/shm/x && echo shm=rw"),
        security=SecurityConfig(read_only_rootfs=True)))
    assert log.split() == ["root=ro", "shm=rw"], log


def test_pod_files_are_bind_mounted(runtime):
    sb = runtime.sandbox_config(hostname="files-pod", dns_search=("svc.example",))
    st, log, _ = asyncio.run(runtime.run(
        ("sh", "-c", "cat /etc/hostname; grep files-pod /etc/hosts; grep search /etc/resolv.conf"),
        sandbox=sb))
    assert st.exit_code == 0, log
    assert "files-pod\n" in log and "127.0.1.1\tfiles-pod" in log and "search svc.example" in log


def test_mount_and_umount_are_denied(runtime):
    st, log, _ = asyncio.run(runtime.run(("sh", "-c", """
        mkdir -p /mnt/t
        mount -t tmpfs none /mnt/t 2>/dev/null && echo mount=ok || echo mount=denied
        umount /proc 2>/dev/null && echo umount=ok || echo umount=denied
    """)))
    assert log.split() == ["mount=denied", "umount=denied"], log


def test_runs_as_the_configured_user(runtime):
    st, log, _ = asyncio.run(runtime.run(
        ("sh", "-c", "echo $(id -u) $(id -g); touch /root/x 2>/dev/null && echo root-writable || echo denied"),
        security=SecurityConfig(uid=65534, gid=65534)))
    assert st.exit_code == 0, log
    assert log.split() == ["65534", "65534", "denied"]
