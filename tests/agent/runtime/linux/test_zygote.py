"""The zygote: it enters pod namespaces only around a fork and always returns
to its own; it is the parent of every container's program and the only
process of ours beside them; it outlives a detached agent while containers
run, refuses a second agent, and ends when nothing is left to watch; if it
is killed, containers keep running and a new zygote takes over."""
from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from agent.runtime.interface import Mount, StartError, State
from agent.runtime.linux import LinuxRuntime, ZygoteError, aio
from agent.runtime.linux import syscalls as sc

from .conftest import leftovers

pytestmark = pytest.mark.root

KINDS = ("net", "ipc", "uts", "mnt", "pid", "pid_for_children", "cgroup")


def _ns(pid: int | str) -> dict[str, str]:
    return {k: os.readlink(f"/proc/{pid}/ns/{k}") for k in KINDS}


def test_zygote_stays_in_its_own_namespaces(runtime):
    zygote = runtime.rt.zygote.pid
    before = _ns(zygote)
    assert before == _ns("self")   # spawned from us: the host's namespaces

    async def body():
        shared = runtime.sandbox_config(share_process_namespace=True)
        plain = runtime.sandbox_config()
        for sb in (shared, plain):
            await runtime.rt.create_sandbox(sb)
            cfg = runtime.container_config(sb.pod_id, ("true",))
            await runtime.rt.start(cfg)
            await runtime.rt.wait(cfg.id)
        # A start that fails inside init (the volume's source is missing).
        bad = runtime.container_config(plain.pod_id, ("true",),
                                       mounts=(Mount(target="/data", source="/nonexistent-skiff-src"),))
        with pytest.raises(StartError) as err:
            await runtime.rt.start(bad)
        # The pod still works afterwards.
        st, log, _ = await runtime.run(("hostname",), sandbox=plain)
        return str(err.value), st, log
    message, st, log = asyncio.run(body())
    assert "/nonexistent-skiff-src" in message
    assert st.state is State.EXITED and st.exit_code == 0 and log.strip() == "pod"
    assert _ns(zygote) == before


def test_remove_after_a_failed_start_leaves_nothing(runtime):
    async def body():
        sb = runtime.sandbox_config()
        await runtime.rt.create_sandbox(sb)
        bad = runtime.container_config(sb.pod_id, ("nosuch",))
        with pytest.raises(StartError):
            await runtime.rt.start(bad)
        await runtime.rt.remove(bad.id)
        await runtime.rt.remove_sandbox(sb.pod_id)
    asyncio.run(body())
    assert leftovers(runtime.rt) == []


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_programs_are_children_of_the_zygote_and_nothing_else_runs(runtime):
    async def body():
        sb = runtime.sandbox_config()
        await runtime.rt.create_sandbox(sb)
        return [(await runtime.rt.start(runtime.container_config(sb.pod_id, ("sleep", "100")))).pid
                for _ in range(3)]
    programs = asyncio.run(body())
    # No shim, no per-container helper: the three programs, and at most the
    # one spare process forked ahead for the next start, are all there is.
    children = _children(runtime.rt.zygote.pid)
    assert set(programs) <= children
    assert [_comm(p) for p in children - set(programs)] in ([], ["skiff-spare"])
    assert [_comm(p) for p in programs] == ["sleep"] * 3


def test_a_detached_zygote_watches_until_the_last_container_ends(runtime):
    rt = runtime.rt

    async def start():
        sb = runtime.sandbox_config()
        await rt.create_sandbox(sb)
        long = runtime.container_config(sb.pod_id, ("sleep", "100"))
        short = runtime.container_config(sb.pod_id, ("sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 3"))
        return [(await rt.start(cfg)).pid for cfg in (long, short)], long, short
    (long_pid, short_pid), long, short = asyncio.run(start())
    zygote = rt.zygote.pid
    assert (rt.dirs.run_dir / "zygote.pid").read_text() == f"{zygote}\n"
    rt.close()   # the agent leaves; containers still run: the zygote stays
    Path(f"/proc/{short_pid}/root/tmp/go").touch()
    asyncio.run(aio.wait_pidfd(short_pid, alive=lambda: True))
    rt2 = LinuxRuntime(run_dir=rt.dirs.run_dir, cgroup_parent=rt.cgroup_parent)
    try:
        assert rt2.zygote.pid == zygote
        # Recorded while no agent was attached.
        after = asyncio.run(rt2.wait(short.id))
        assert (after.state, after.exit_code, after.reason) == (State.EXITED, 3, "Error")
        assert asyncio.run(rt2.status(long.id)).state is State.RUNNING
        with pytest.raises(ZygoteError, match="another agent is attached"):
            LinuxRuntime(run_dir=rt.dirs.run_dir, cgroup_parent=rt.cgroup_parent)
        asyncio.run(rt2.remove(long.id))
    finally:
        rt2.close()
    # Nothing to watch, nobody attached: it ends, and takes its socket and pid file along.
    asyncio.run(aio.wait_pidfd(zygote, alive=lambda: True))
    rt.zygote.reap_if_exited()
    assert not (rt.dirs.run_dir / "zygote.sock").exists() and not (rt.dirs.run_dir / "zygote.pid").exists()


def test_containers_outlive_a_killed_zygote_and_end_as_status_unknown(runtime):
    rt = runtime.rt
    # The killed zygote's orphans come to us, so they can be reaped here.
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    try:
        async def body():
            sb = runtime.sandbox_config()
            await rt.create_sandbox(sb)
            cfg = runtime.container_config(sb.pod_id, ("sleep", "100"))
            started = await rt.start(cfg)
            old = rt.zygote.pid
            os.kill(old, signal.SIGKILL)
            await aio.wait_pidfd(old, alive=lambda: True)
            rt.zygote.reap_if_exited()
            still = await rt.status(cfg.id)
            # New work gets a new zygote; the old one's container ran on.
            st, log, _ = await runtime.run(("echo", "after"), sandbox=sb)
            new = rt.zygote.pid
            os.kill(started.pid, signal.SIGKILL)
            ended = await rt.wait(cfg.id)
            os.waitpid(started.pid, 0)
            return started, still, (st, log), old, new, ended
        started, still, (st, log), old, new, ended = asyncio.run(body())
    finally:
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 0)
    assert (still.state, still.pid) == (State.RUNNING, started.pid)
    assert (st.exit_code, log, new != old) == (0, "after\n", True)
    assert (ended.state, ended.exit_code, ended.reason) == (State.EXITED, 137, "ContainerStatusUnknown")
    assert "skiff-zygote" in ended.message


def test_a_start_goes_on_when_the_spare_was_killed(runtime):
    async def body():
        sb = runtime.sandbox_config()
        first, _, _ = await runtime.run(("true",), sandbox=sb)   # the zygote keeps a spare after a start
        spares = [p for p in _children(runtime.rt.zygote.pid) if _comm(p) == "skiff-spare"]
        for pid in spares:
            os.kill(pid, signal.SIGKILL)
            # A kill lands asynchronously: handed over in the instant before
            # the spare's exit closed its socket, the start would go to a dying
            # process and end 137, as a program killed right at its start.
            await aio.wait_pidfd(pid, alive=lambda: True)
        cfg = runtime.container_config(sb.pod_id, ("echo", "still starts"))
        await runtime.rt.start(cfg)
        return spares, await runtime.rt.wait(cfg.id), Path(cfg.log_path).read_text()
    spares, st, log = asyncio.run(body())
    assert len(spares) == 1
    assert (st.exit_code, log) == (0, "still starts\n")


def test_an_agent_of_a_newer_protocol_retires_the_old_zygote(runtime, monkeypatch):
    from agent.runtime.linux import zygote as zmod
    rt = runtime.rt

    async def start():
        sb = runtime.sandbox_config()
        await rt.create_sandbox(sb)
        cfg = runtime.container_config(sb.pod_id, ("sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 4"))
        return sb, cfg, (await rt.start(cfg)).pid
    sb, old_cfg, old_pid = asyncio.run(start())
    old = rt.zygote.pid
    rt.close()
    monkeypatch.setattr(zmod, "PROTOCOL", zmod.PROTOCOL + 1)   # an upgraded agent
    rt2 = LinuxRuntime(run_dir=rt.dirs.run_dir, cgroup_parent=rt.cgroup_parent)
    try:
        assert rt2.zygote.pid != old and os.path.exists(f"/proc/{old}")   # retired, still watching
        st, log, _ = asyncio.run(_run_with(rt2, runtime, sb))
        assert (st.exit_code, log) == (0, "new\n")
        Path(f"/proc/{old_pid}/root/tmp/go").touch()
        ended = asyncio.run(rt2.wait(old_cfg.id))
        # The old zygote recorded it, then, with nothing left, went.
        assert (ended.exit_code, ended.reason) == (4, "Error")
        asyncio.run(aio.wait_pidfd(old, alive=lambda: True))
        rt.zygote.reap_if_exited()
        asyncio.run(rt2.cleanup_orphans(set()))
    finally:
        rt2.close()


async def _run_with(rt, runtime, sb):
    cfg = runtime.container_config(sb.pod_id, ("echo", "new"))
    await rt.start(cfg)
    return await rt.wait(cfg.id), Path(cfg.log_path).read_text(), cfg
