"""apply_rlimits in a child process (root): the limits it reports are the ones in force."""
from __future__ import annotations

import resource

import pytest

from agent.runtime.linux.security import DEFAULT_NOFILE, apply_rlimits

pytestmark = pytest.mark.root


def test_nofile_is_raised_as_far_as_the_host_allows(in_child):
    def body():
        applied = apply_rlimits()
        return [list(applied["RLIMIT_NOFILE"]), list(resource.getrlimit(resource.RLIMIT_NOFILE))]

    applied, in_force = in_child(body)
    assert applied == in_force
    nr_open = int(open("/proc/sys/fs/nr_open").read())
    host_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # Either the full default (CAP_SYS_RESOURCE held) or clamped to what the runtime may hand out.
    assert in_force in ([min(n, nr_open) for n in DEFAULT_NOFILE], [min(DEFAULT_NOFILE[0], host_hard)] * 2)


def test_extra_limits_and_lowering(in_child):
    def body():
        applied = apply_rlimits(nofile=(256, 512), extra={"nproc": (100, 200), "RLIMIT_CORE": (0, 0)})
        return [applied, [list(resource.getrlimit(r)) for r in
                          (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC, resource.RLIMIT_CORE)]]

    applied, in_force = in_child(body)
    assert in_force == [[256, 512], [100, 200], [0, 0]]
    assert applied == {"RLIMIT_NOFILE": [256, 512], "RLIMIT_NPROC": [100, 200], "RLIMIT_CORE": [0, 0]}


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="soft limit"):
        apply_rlimits(nofile=(10, 5))
    with pytest.raises(ValueError, match="unknown rlimit"):
        apply_rlimits(nofile=None, extra={"warp_drive": (1, 1)})
