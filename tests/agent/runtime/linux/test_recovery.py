"""Containers outlive the agent: a process that owns a LinuxRuntime is
SIGKILLed; its zygote goes on watching the containers, a new LinuxRuntime on
the same run dir attaches to it, finds the running container untouched and
the exit code of the one that ended meanwhile. If the zygote itself dies,
containers keep running and a new one takes over; what the dead one watched
ends as ContainerStatusUnknown."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.runtime.interface import State
from agent.runtime.linux import LinuxRuntime
from agent.runtime.linux import aio
from agent.runtime.linux import syscalls as sc

from .conftest import ROOT, leftovers

pytestmark = pytest.mark.root

AGENT = textwrap.dedent("""
    import asyncio, json, sys
    from pathlib import Path
    from agent.runtime.interface import ContainerConfig, SandboxConfig
    from agent.runtime.linux import LinuxRuntime
    run_dir, parent, layer = sys.argv[1:4]
    rt = LinuxRuntime(run_dir=Path(run_dir), cgroup_parent=parent)
    async def main():
        await rt.create_sandbox(SandboxConfig(pod_id="p1", namespace="default", name="p", hostname="p"))
        ids = {}
        for name, script in (("long", "sleep 60"), ("short", "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 5")):
            cfg = ContainerConfig(id=f"c-{name}", pod_id="p1", name=name, image="busybox", image_id="x",
                                  lower_dirs=(Path(layer),), args=("sh", "-c", script))
            ids[name] = (await rt.start(cfg)).pid
        print(json.dumps({"zygote": rt.zygote.pid, **ids}), flush=True)
        await asyncio.sleep(3600)
    asyncio.run(main())
""")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def test_containers_survive_an_agent_kill_and_report_exit_codes(runtime):
    rt_dir, parent = runtime.rt.dirs.run_dir / "agent", runtime.rt.cgroup_parent
    # Orphans of the killed "agent" come to us, so they can be reaped here
    # (this machine's PID 1 does not reap).
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    agent = subprocess.Popen([sys.executable, "-c", AGENT, str(rt_dir), parent, str(runtime.layer)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    pids = {}
    rt2 = None
    try:
        pids = json.loads(agent.stdout.readline())
        agent.kill()
        agent.wait()
        # The short one ends while no runtime exists at all.
        (Path(f"/proc/{pids['short']}/root/tmp/go")).touch()
        asyncio.run(aio.wait_pidfd(pids["short"], alive=lambda: True))
        rt2 = LinuxRuntime(run_dir=rt_dir, cgroup_parent=parent)
        assert rt2.zygote.pid == pids["zygote"]   # attached to the zygote that watched them
        found = {s.name: s for s in asyncio.run(rt2.list_containers())}
        assert (found["long"].state, found["long"].pid) == (State.RUNNING, pids["long"])
        assert (found["short"].state, found["short"].exit_code, found["short"].reason) == \
            (State.EXITED, 5, "Error")
        st = asyncio.run(rt2.wait("c-short"))
        assert (st.state, st.exit_code) == (State.EXITED, 5)
        after = asyncio.run(rt2.status("c-long"))
        assert (after.state, after.pid) == (State.RUNNING, pids["long"])
        asyncio.run(rt2.stop("c-long", 1))
        # sleep, as PID 1, has no TERM handler: the grace period ends in SIGKILL.
        assert asyncio.run(rt2.status("c-long")).exit_code == 137
        asyncio.run(rt2.cleanup_orphans(set()))
        rt2.close()   # nothing left to watch, no agent attached: the zygote ends
        asyncio.run(aio.wait_pidfd(pids["zygote"], alive=lambda: True))
        assert leftovers(rt2, pids=[pids["long"], pids["short"], pids["zygote"]]) == []
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        if rt2 is not None:
            asyncio.run(rt2.cleanup_orphans(set()))
            rt2.close()
        for pid in (pids.get("zygote"), pids.get("long"), pids.get("short")):
            if pid:
                _reap(pid)
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 0)
