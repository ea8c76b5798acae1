"""apply_process_security on the real kernel: what the container's process ends up with (root)."""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agent.runtime.interface import SecurityConfig
from agent.runtime.linux.security import (DEFAULT_CAPABILITIES, CapabilityError, apply_process_security,
                                          effective_capabilities)
from agent.runtime.linux.security.capabilities import CAPABILITIES, last_cap, mask_of, names_of

pytestmark = pytest.mark.root

BUSYBOX = "/usr/bin/busybox"
CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_REC, MS_PRIVATE, MNT_DETACH = 0x4000, 0x40000, 2
NET_BIND_SERVICE = 1 << 10

_libc = ctypes.CDLL(None, use_errno=True)


def _errno_of(ret: int) -> int:
    return 0 if ret == 0 else ctypes.get_errno()


def _status(text: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def _host_status() -> dict[str, str]:
    return _status(Path("/proc/self/status").read_text())


def _status_after(after_exec, cfg: SecurityConfig, *, ambient: frozenset[str] = frozenset()) -> dict[str, str]:
    code, out = after_exec(lambda: apply_process_security(cfg, ambient=ambient),
                           [BUSYBOX, "cat", "/proc/self/status"])
    assert code == 0, out
    return _status(out)


def _caps(status: dict[str, str], key: str) -> int:
    return int(status[key], 16)


@pytest.fixture
def scratch_dir():
    path = tempfile.mkdtemp(prefix="skiff-test-sec-")
    os.chmod(path, 0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _try_kernel_calls(scratch: str) -> dict[str, int]:
    target = scratch.encode()
    results = {
        "mount": _errno_of(_libc.mount(b"tmpfs", target, b"tmpfs", 0, None)),
        "umount2": _errno_of(_libc.umount2(target, MNT_DETACH)),
        "unshare": _errno_of(_libc.unshare(CLONE_NEWNS)),
        "setns": _errno_of(_libc.setns(os.open("/proc/self/ns/net", os.O_RDONLY), 0)),
    }
    with open(os.path.join(scratch, "written"), "w") as f:      # ordinary work goes on
        results["write"] = f.write("hello")
    os.unlink(os.path.join(scratch, "written"))
    pid = os.fork()                                              # clone without CLONE_NEW* is fine
    if pid == 0:
        os._exit(7)
    results["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    # glibc's posix_spawn tries clone3 first; ENOSYS from the filter makes it fall back.
    results["spawn"] = subprocess.run([BUSYBOX, "true"]).returncode
    return results


def test_default_profile_denies_mount_umount_unshare_setns(in_child, scratch_dir):
    # CAP_SYS_ADMIN is kept on purpose: the EPERMs below come from seccomp, not from missing capabilities.
    cfg = SecurityConfig(capabilities=DEFAULT_CAPABILITIES | {"CAP_SYS_ADMIN"})
    results = in_child(lambda: (apply_process_security(cfg), _try_kernel_calls(scratch_dir))[1])
    assert results == {"mount": errno.EPERM, "umount2": errno.EPERM, "unshare": errno.EPERM,
                       "setns": errno.EPERM, "write": 5, "fork": 7, "spawn": 0}


def test_unconfined_lets_the_same_calls_through(in_child, scratch_dir):
    cfg = SecurityConfig(capabilities=DEFAULT_CAPABILITIES | {"CAP_SYS_ADMIN"}, seccomp="Unconfined")

    def body():
        apply_process_security(cfg)
        unshare = _errno_of(_libc.unshare(CLONE_NEWNS))
        # Private first, so the test mount cannot propagate back to the host.
        private = _errno_of(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None))
        mount = _errno_of(_libc.mount(b"tmpfs", scratch_dir.encode(), b"tmpfs", 0, None))
        umount = _errno_of(_libc.umount2(scratch_dir.encode(), MNT_DETACH))
        return [unshare, private, mount, umount]

    assert in_child(body) == [0, 0, 0, 0]


def test_default_set_after_exec(after_exec):
    status = _status_after(after_exec, SecurityConfig())
    expected = mask_of(DEFAULT_CAPABILITIES)
    assert names_of(_caps(status, "CapEff")) == DEFAULT_CAPABILITIES
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert _caps(status, key) == expected, key
    assert _caps(status, "CapInh") == 0 and _caps(status, "CapAmb") == 0
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"
    assert status["Uid"].split() == ["0"] * 4


def test_drop_all_add_net_bind_service_gives_exactly_that(after_exec):
    caps = effective_capabilities(add=["NET_BIND_SERVICE"], drop=["ALL"])
    status = _status_after(after_exec, SecurityConfig(capabilities=caps))
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert _caps(status, key) == NET_BIND_SERVICE, key


def test_non_root_user_gets_its_ids_and_no_capabilities(after_exec):
    cfg = SecurityConfig(uid=1000, gid=1000, supplemental_gids=(1001, 1002))
    status = _status_after(after_exec, cfg)
    assert status["Uid"].split() == ["1000"] * 4
    assert status["Gid"].split() == ["1000"] * 4
    assert status["Groups"].split() == ["1001", "1002"]
    assert _caps(status, "CapEff") == 0 and _caps(status, "CapPrm") == 0
    assert _caps(status, "CapBnd") == mask_of(DEFAULT_CAPABILITIES)


def test_non_root_user_keeps_ambient_capabilities(after_exec):
    cfg = SecurityConfig(uid=1000, gid=1000)
    status = _status_after(after_exec, cfg, ambient=frozenset({"NET_BIND_SERVICE"}))
    assert _caps(status, "CapEff") == NET_BIND_SERVICE
    assert _caps(status, "CapAmb") == NET_BIND_SERVICE
    assert status["Uid"].split() == ["1000"] * 4


@pytest.mark.parametrize("ambient, expected", [(frozenset({"CAP_NET_BIND_SERVICE"}), "bound"),
                                               (frozenset(), "EACCES")])
def test_ambient_capability_lets_non_root_bind_a_low_port(after_exec, ambient, expected):
    def setup():
        # A private network namespace: port 80 there touches nothing on the host.
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
        apply_process_security(SecurityConfig(uid=1000, gid=1000), ambient=ambient)

    probe = ("import errno, socket\ns = socket.socket()\n"
             "try:\n    s.bind(('0.0.0.0', 80)); print('bound')\n"
             "except OSError as e:\n    print(errno.errorcode[e.errno])")
    code, out = after_exec(setup, [sys.executable, "-I", "-c", probe])
    assert (code, out.strip()) == (0, expected)


def test_without_no_new_privs_the_filter_still_goes_in(after_exec, in_child, scratch_dir):
    cfg = SecurityConfig(no_new_privileges=False)
    status = _status_after(after_exec, cfg)
    assert status["NoNewPrivs"] == "0"
    assert status["Seccomp"] == "2"
    assert _caps(status, "CapEff") == mask_of(DEFAULT_CAPABILITIES)
    cfg_admin = SecurityConfig(no_new_privileges=False, capabilities=DEFAULT_CAPABILITIES | {"CAP_SYS_ADMIN"})
    assert in_child(lambda: (apply_process_security(cfg_admin), _try_kernel_calls(scratch_dir))[1])["mount"] \
        == errno.EPERM


def test_privileged_keeps_everything_and_has_no_filter(after_exec):
    status = _status_after(after_exec, SecurityConfig(privileged=True))
    assert status["Seccomp"] == "0"
    assert _caps(status, "CapBnd") == _caps(_host_status(), "CapBnd")
    assert _caps(status, "CapEff") == _caps(_host_status(), "CapBnd")


def test_unconfined_installs_no_filter(after_exec):
    status = _status_after(after_exec, SecurityConfig(seccomp="Unconfined"))
    assert status["Seccomp"] == "0"
    assert status["NoNewPrivs"] == "1"


def test_a_capability_the_runtime_lacks_is_refused_by_name(in_child):
    bounding = _caps(_host_status(), "CapBnd")
    missing = sorted(name for name, bit in CAPABILITIES.items() if bit <= last_cap() and not bounding >> bit & 1)
    if not missing:
        pytest.skip("the test process holds every capability")

    def body():
        try:
            apply_process_security(SecurityConfig(capabilities=frozenset({missing[0]})))
        except CapabilityError as exc:
            return str(exc)
        return "applied"

    assert missing[0] in in_child(body)


def test_ambient_outside_the_kept_set_is_refused(in_child):
    def body():
        try:
            apply_process_security(SecurityConfig(uid=1000, capabilities=frozenset()),
                                   ambient=frozenset({"CAP_NET_RAW"}))
        except CapabilityError as exc:
            return str(exc)
        return "applied"

    assert "CAP_NET_RAW" in in_child(body)


def test_unknown_seccomp_profile_is_refused_before_anything_changes(in_child):
    def body():
        try:
            apply_process_security(SecurityConfig(uid=1000, seccomp="localhost/custom.json"))
        except ValueError as exc:
            return [str(exc), os.getuid()]
        return ["applied", os.getuid()]

    message, uid = in_child(body)
    assert "localhost/custom.json" in message and uid == 0


def test_every_denied_syscall_gets_eperm_from_the_kernel(in_child):
    """Each call of the deny list, with all-zero arguments (harmless even
    unfiltered: bad pointers, no-ops, or capabilities the child lacks)."""
    from agent.runtime.linux.security.seccomp import DENIED
    from agent.runtime.linux.security.syscall_numbers import ARCHES

    machine = os.uname().machine
    if machine not in ARCHES:
        pytest.skip(f"no syscall table for {machine}")
    numbers = ARCHES[machine][1]
    _libc.syscall.restype = ctypes.c_long
    cfg = SecurityConfig(capabilities=DEFAULT_CAPABILITIES | {"CAP_SYS_ADMIN"})

    def body():
        apply_process_security(cfg)
        if _status(Path("/proc/self/status").read_text())["Seccomp"] != "2":
            raise AssertionError("no filter in place: not issuing the calls")
        results = {}
        for name in DENIED:
            if name in numbers:
                ret = _libc.syscall(ctypes.c_long(numbers[name]), *([ctypes.c_long(0)] * 6))
                results[name] = ctypes.get_errno() if ret == -1 else f"returned {ret}"
        return results

    results = in_child(body)
    assert results and all(value == errno.EPERM for value in results.values()), results
