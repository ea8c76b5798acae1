"""Process security for a container: identity, capabilities, no_new_privs, seccomp, rlimits.

Everything here runs inside the container's process, after its rootfs is set
up and right before execve (see process.py for the order and why):

    apply_rlimits()                       # while CAP_SYS_RESOURCE is still held
    apply_process_security(cfg)           # groups, gid, uid, caps, no_new_privs, seccomp
    os.execvpe(...)

Helpers the runtime uses before that point: `effective_capabilities` (a
securityContext's add/drop → the set), `DEFAULT_CAPABILITIES` (Docker's), and
`resolve_user` (an image's User against its own /etc/passwd, safely).

`warm_up()` fills the few caches this package keeps (cap_last_cap, nr_open,
the seccomp program and its ctypes array). It runs on import, which happens
in the zygote before it forks containers, so each container's setup skips
~2 ms of /proc reads and program building.
"""
import os

from agent.runtime.linux.security import _libc, capabilities, rlimits, seccomp
from agent.runtime.linux.security.capabilities import (ALL_CAPABILITIES, CAPABILITIES, DEFAULT_CAPABILITIES,
                                                       CapabilityError, cap_name, effective_capabilities)
from agent.runtime.linux.security.process import apply_process_security, check_security_config
from agent.runtime.linux.security.rlimits import DEFAULT_NOFILE, apply_rlimits
from agent.runtime.linux.security.seccomp import RUNTIME_DEFAULT, UNCONFINED, SeccompError
from agent.runtime.linux.security.users import ResolvedUser, UserLookupError, resolve_user, resolve_user_from

__all__ = ["ALL_CAPABILITIES", "CAPABILITIES", "DEFAULT_CAPABILITIES", "DEFAULT_NOFILE", "RUNTIME_DEFAULT",
           "UNCONFINED", "CapabilityError", "ResolvedUser", "SeccompError", "UserLookupError",
           "apply_process_security", "apply_rlimits", "cap_name", "check_security_config", "effective_capabilities",
           "resolve_user", "resolve_user_from", "warm_up"]


def warm_up() -> None:
    """Fill the caches (idempotent, never raises: each cached reader has its fallback)."""
    capabilities.last_cap()
    rlimits.nr_open()
    if os.uname().machine not in seccomp.ARCHES:
        return   # unsupported machine: the real calls will say so, with context
    _libc._filter_array(seccomp.default_program())
    # First calls through ctypes build their argument converters; do it once
    # here with harmless reads instead of in every container.
    try:
        _libc.capget()
        _libc.prctl(_libc.PR_CAPBSET_READ, 0, name="PR_CAPBSET_READ")
        _libc.prctl(_libc.PR_GET_NO_NEW_PRIVS, name="PR_GET_NO_NEW_PRIVS")
    except OSError:
        pass


warm_up()
