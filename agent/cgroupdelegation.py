"""The pods' cgroups under systemd's delegation (deploy/systemd/skiff-agent.service: Delegate=yes).

On a cgroup v2 host systemd owns the tree; a unit with Delegate=yes is handed its own
subtree (systemd marks it with the xattr `trusted.delegate`), and a service that makes
cgroups is expected to make them there, not beside systemd's slices at the root. So when the
agent finds itself in a delegated cgroup of a unified (v2-only) host, the pods' parent goes
under it: `<own>/skiff/pod-<uid>/<container>`.

v2's "no internal processes" rule: a cgroup whose children get controllers (memory, cpu,
pids) may hold no process itself, so the agent first moves itself into the leaf `<own>/agent`
— before it starts its zygote or any thread, so everything it starts later is there too.
KillMode=process keeps the pods when the unit stops; the next agent finds them in the same
place. Anywhere else (v1 or hybrid hosts, the root cgroup, a login session's scope, which
systemd would kill with the pods inside) the parent stays as given.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from agent.runtime.linux.cgroups.detect import DEFAULT_ROOT, MOUNTINFO, detect_driver

log = logging.getLogger(__name__)

AGENT_LEAF = "agent"


def _delegated(path: Path) -> bool:
    for name in ("trusted.delegate", "user.delegate"):   # systemd ≥ 251 sets one of them
        try:
            if os.getxattr(path, name) == b"1":
                return True
        except OSError:
            continue
    return False


def own_cgroup(proc_cgroup: Path = Path("/proc/self/cgroup")) -> str:
    """This process's cgroup in the unified hierarchy ("0::/path"), "" if none."""
    for line in proc_cgroup.read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


def pods_parent(parent: str, *, root: Path = DEFAULT_ROOT, mountinfo: Path = MOUNTINFO,
                proc_cgroup: Path = Path("/proc/self/cgroup"),
                delegated: Callable[[Path], bool] = _delegated) -> str:
    """The cgroup parent the runtime should use for `parent` (see the module docstring); when
    it is under the agent's own delegated cgroup, the agent has moved itself into its leaf."""
    if detect_driver(root=root, mountinfo=mountinfo) != "v2":
        return parent
    own = own_cgroup(proc_cgroup).strip("/")
    if own.endswith(f"/{AGENT_LEAF}"):   # already moved (an exec of itself): the leaf's parent is ours
        own = own.rpartition("/")[0]
    if not own or not delegated(root / own):
        return parent
    leaf = root / own / AGENT_LEAF
    leaf.mkdir(exist_ok=True)
    (leaf / "cgroup.procs").write_text(str(os.getpid()))
    log.info("in systemd's delegated cgroup /%s: the agent moved to /%s/%s, pods go under /%s/%s",
             own, own, AGENT_LEAF, own, parent)
    return f"{own}/{parent}"
