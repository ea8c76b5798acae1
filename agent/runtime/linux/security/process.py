"""apply_process_security: the last steps in a container's process before execve.

Called once the rootfs is in place (after pivot_root), in the process that
will exec the container's command. Each step needs privileges the next one
takes away, which fixes the order:

    setgroups → setgid → (PR_SET_KEEPCAPS) setuid → capabilities → no_new_privs → seccomp

Without no_new_privs the kernel only lets a task with CAP_SYS_ADMIN install a
seccomp filter, so in that case (as runc does) the filter goes in first,
while we are still full root; every later step uses only calls the profile
allows. execve itself is always allowed.
"""
from __future__ import annotations

import os

from agent.runtime.interface import SecurityConfig
from agent.runtime.linux.security import _libc, seccomp
from agent.runtime.linux.security.capabilities import (DEFAULT_CAPABILITIES, apply_capabilities, bounding_set,
                                                       cap_name, names_of)


def check_security_config(cfg: SecurityConfig, *, ambient: frozenset[str] = frozenset()) -> None:
    """What apply_process_security would refuse, found before forking (so the
    runtime can turn it into a StartError): ValueError naming the field."""
    try:
        seccomp.check_profile(cfg.seccomp)
    except ValueError as exc:
        raise ValueError(f"securityContext.seccompProfile: {exc}") from None
    for field, names in (("capabilities", cfg.capabilities or ()), ("ambient", ambient)):
        for name in names:
            try:
                cap_name(name)
            except ValueError as exc:
                raise ValueError(f"securityContext.{field}: {exc}") from None
    ids = [("uid", cfg.uid), ("gid", cfg.gid), *(("supplemental_gids", g) for g in cfg.supplemental_gids)]
    for field, value in ids:
        if not 0 <= value < 2**32 - 1:
            raise ValueError(f"securityContext.{field}: {value} is not a valid id")
    if not cfg.privileged and cfg.capabilities is not None:
        extra = frozenset(cap_name(a) for a in ambient) - frozenset(cap_name(c) for c in cfg.capabilities)
        if extra:
            raise ValueError(f"securityContext.ambient: {sorted(extra)} not among the container's capabilities")


def apply_process_security(cfg: SecurityConfig, *, ambient: frozenset[str] = frozenset()) -> None:
    """Drop this process to what cfg allows. `ambient`: capabilities (a subset
    of cfg's) that a non-root user keeps across execve; Kubernetes gives none."""
    seccomp.check_profile(cfg.seccomp)
    if cfg.privileged:
        # Everything the runtime itself holds; asking for more would fail capset.
        keep = names_of(_libc.capget()[1]) & bounding_set()
    else:
        keep = frozenset(cap_name(c) for c in (DEFAULT_CAPABILITIES if cfg.capabilities is None
                                               else cfg.capabilities))
    ambient = frozenset(cap_name(c) for c in ambient)
    filtered = not cfg.privileged and cfg.seccomp == seccomp.RUNTIME_DEFAULT
    # Built before anything is dropped, so a bad table fails while errors can still be reported.
    program = seccomp.default_program() if filtered else None

    if program is not None and not cfg.no_new_privileges:
        # No no_new_privs: only CAP_SYS_ADMIN may install a filter, and it goes next.
        seccomp.install(program)

    # Supplementary groups and the gid first: both need CAP_SETGID, which
    # setuid to a non-root user (or the capability step) takes away.
    _call("setgroups", lambda: os.setgroups(list(cfg.supplemental_gids)), cfg.supplemental_gids)
    _call("setgid", lambda: os.setgid(cfg.gid), cfg.gid)
    if cfg.uid != 0:
        # Keep the permitted set across setuid, so the capability step can
        # still choose what to keep (and raise ambient ones).
        _libc.prctl(_libc.PR_SET_KEEPCAPS, 1, name="PR_SET_KEEPCAPS")
    _call("setuid", lambda: os.setuid(cfg.uid), cfg.uid)

    # Capabilities after the identity switch (which needed CAP_SETUID/SETGID)
    # and before no_new_privs; dropping the bounding set needs CAP_SETPCAP.
    apply_capabilities(keep=keep, ambient=ambient)
    if cfg.uid != 0:
        _libc.prctl(_libc.PR_SET_KEEPCAPS, 0, name="PR_SET_KEEPCAPS")

    if cfg.no_new_privileges:
        # setuid binaries and file capabilities can no longer raise privileges
        # on execve; also what lets an unprivileged task install a filter.
        _libc.prctl(_libc.PR_SET_NO_NEW_PRIVS, 1, name="PR_SET_NO_NEW_PRIVS")
        if program is not None:
            # Last: nothing after this needs a denied call; execve is allowed.
            seccomp.install(program)


def _call(name: str, fn, arg) -> None:
    try:
        fn()
    except OSError as exc:
        raise OSError(exc.errno, f"{name}({arg}): {exc.strerror}") from exc
