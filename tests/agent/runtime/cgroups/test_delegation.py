"""agent/cgroupdelegation.py: under systemd's Delegate=yes on a v2 host, the pods' cgroups go
under the agent's own delegated cgroup and the agent moves into its leaf `agent` first (v2's
no-internal-processes rule). The real kernel: the cgroup2 tree at /sys/fs/cgroup/unified
stands in for a v2 host's root, a cgroup of the test's marked `trusted.delegate` as systemd
marks a Delegate=yes unit's; a process started in it runs the agent's step.
Elsewhere (v1, not delegated) nothing moves: fakes of mountinfo and /proc/self/cgroup."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cgroupdelegation import pods_parent
from tests.agent.runtime.cgroups.test_cgroup_detect import HYBRID_HOST, UNIFIED_HOST

UNIFIED = Path("/sys/fs/cgroup/unified")
ROOT = Path(__file__).resolve().parents[4]


def test_a_delegated_unit_nests_the_pods_and_the_agent_moves_into_its_leaf(cgroup_parent):
    if not (UNIFIED / "cgroup.controllers").exists():
        pytest.skip("no cgroup2 tree at /sys/fs/cgroup/unified")
    unit = UNIFIED / cgroup_parent / "skiff-agent.service"
    unit.mkdir(parents=True)
    try:
        os.setxattr(unit, "trusted.delegate", b"1")
    except OSError as exc:
        pytest.skip(f"cgroup2 here takes no trusted xattr: {exc}")
    script = (f"import os, sys\nopen({str(unit / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))\n"
              "from pathlib import Path\nfrom agent.cgroupdelegation import pods_parent\n"
              f"print(pods_parent('skiff', root=Path({str(UNIFIED)!r})))\n"
              "print([l for l in open('/proc/self/cgroup').read().splitlines() if l.startswith('0::')][0])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    parent, own = done.stdout.splitlines()
    assert parent == f"{cgroup_parent}/skiff-agent.service/skiff"
    assert own == f"0::/{cgroup_parent}/skiff-agent.service/agent"
    assert (unit / "cgroup.procs").read_text() == ""   # the unit's own cgroup holds no process


def test_v1_hosts_and_undelegated_cgroups_keep_the_parent(tmp_path):
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    v1.write_text(HYBRID_HOST)
    v2.write_text(UNIFIED_HOST)
    proc = tmp_path / "cgroup"
    proc.write_text("0::/system.slice/skiff-agent.service\n")
    asked = []

    def delegated(path: Path) -> bool:
        asked.append(path)
        return False
    assert pods_parent("skiff", mountinfo=v1, proc_cgroup=proc, delegated=delegated) == "skiff"
    assert asked == []   # a v1 or hybrid host: the pods' cgroups stay where v1 puts them
    # A login session's scope is not delegated: systemd would kill the pods with the session.
    proc.write_text("0::/user.slice/user-0.slice/session-3.scope\n")
    assert pods_parent("skiff", mountinfo=v2, proc_cgroup=proc, delegated=delegated) == "skiff"
    assert asked == [Path("/sys/fs/cgroup/user.slice/user-0.slice/session-3.scope")]
    proc.write_text("0::/\n")   # the root cgroup (a container's namespace, or no systemd)
    assert pods_parent("skiff", mountinfo=v2, proc_cgroup=proc, delegated=delegated) == "skiff"
