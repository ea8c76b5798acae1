"""A container's life through LinuxRuntime: exit codes, start errors, logs,
stop, zombies, and that remove/remove_sandbox leave nothing behind."""
from __future__ import annotations

import asyncio
import os

import pytest

from agent.runtime.interface import StartError, State

from .conftest import leftovers

pytestmark = pytest.mark.root


@pytest.mark.parametrize("script, code, reason", [
    ("exit 0", 0, "Completed"), ("exit 3", 3, "Error"),
    # PID 1 of a pid namespace gets no signal it has no handler for from inside
    # it, SIGKILL included (as in any Kubernetes container).
    ("kill -9 $$; echo survived; exit 7", 7, "Error"),
    ("sh -c 'kill -TERM $$'; exit $?", 143, "Error"),   # a child's signal death, as the shell reports it
])
def test_exit_status_is_reported(runtime, script, code, reason):
    st, _, _ = asyncio.run(runtime.run(("sh", "-c", script)))
    assert (st.state, st.exit_code, st.reason) == (State.EXITED, code, reason)
    assert st.finished_at is not None and st.started_at <= st.finished_at


def test_a_signal_from_the_host_ends_the_program_and_is_reported(runtime):
    async def body():
        sb = runtime.sandbox_config()
        await runtime.rt.create_sandbox(sb)
        cfg = runtime.container_config(sb.pod_id, ("sleep", "100"))
        started = await runtime.rt.start(cfg)
        os.kill(started.pid, 9)   # the program's host pid
        return await runtime.rt.wait(cfg.id)
    st = asyncio.run(body())
    assert (st.state, st.exit_code, st.signal, st.reason) == (State.EXITED, 137, 9, "Error")


def test_missing_executable_is_a_start_error(runtime):
    async def body():
        sb = runtime.sandbox_config()
        await runtime.rt.create_sandbox(sb)
        cfg = runtime.container_config(sb.pod_id, ("nosuch", "arg"))
        with pytest.raises(StartError) as err:
            await runtime.rt.start(cfg)
        st = await runtime.rt.status(cfg.id)
        return str(err.value), st
    message, st = asyncio.run(body())
    assert message == 'exec: "nosuch": executable file not found in $PATH'
    assert (st.state, st.reason, st.message) == (State.EXITED, "StartError", message)


def test_stdout_and_stderr_are_appended_to_the_log(runtime):
    sb = runtime.sandbox_config()
    log_path = runtime.tmp / "shared.log"
    log_path.write_text("before\n")
    st, log, _ = asyncio.run(runtime.run(("sh", "-c", "echo out; echo err >&2"), sandbox=sb,
                                         log_path=log_path))
    assert log == "before\nout\nerr\n"


def test_a_stdin_container_reads_what_is_written_to_its_fifo(runtime):
    async def body():
        sb = runtime.sandbox_config()
        await runtime.rt.create_sandbox(sb)
        plain = runtime.container_config(sb.pod_id, ("sh", "-c", "cat; echo eof"))
        await runtime.rt.start(plain)
        assert runtime.rt.stdin_fifo(plain.id) is None   # /dev/null: EOF at once
        assert (await runtime.rt.wait(plain.id)).exit_code == 0
        cfg = runtime.container_config(sb.pod_id, ("sh", "-c", 'read a; read b; echo "got $a $b"'), stdin=True)
        await runtime.rt.start(cfg)
        fifo = runtime.rt.stdin_fifo(cfg.id)
        for line in (b"one\n", b"two\n"):   # writers come and go; the program never sees EOF between
            fd = os.open(fifo, os.O_WRONLY)
            os.write(fd, line)
            os.close(fd)
        st = await runtime.rt.wait(cfg.id)
        return st, plain.log_path.read_text(), cfg.log_path.read_text()
    st, plain_log, log = asyncio.run(body())
    assert (plain_log, st.exit_code, log) == ("eof\n", 0, "got one two\n")


def test_env_and_working_dir(runtime):
    st, log, _ = asyncio.run(runtime.run(("sh", "-c", 'echo "$GREETING $PWD $HOSTNAME"'),
                                         env=(("GREETING", "hi there"),), working_dir="/srv/app"))
    assert st.exit_code == 0
    assert log.strip() == "hi there /srv/app pod"


def test_stop_sends_the_stop_signal_then_sigkill(runtime):
    async def body():
        sb = runtime.sandbox_config()
        await runtime.rt.create_sandbox(sb)
        # Traps TERM and exits 7: the signal reached the main process via init.
        polite = runtime.container_config(sb.pod_id, ("sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done"))
        # Ignores TERM: only SIGKILL after the grace period ends it.
        stubborn = runtime.container_config(sb.pod_id, ("sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"))
        for cfg in (polite, stubborn):
            st = await runtime.rt.start(cfg)
            assert st.state is State.RUNNING
        await asyncio.sleep(0.3)  # let the shells install their traps
        await runtime.rt.stop(polite.id, 30)
        await runtime.rt.stop(stubborn.id, 0.5)
        await runtime.rt.stop(stubborn.id, 0.5)  # idempotent
        return await runtime.rt.status(polite.id), await runtime.rt.status(stubborn.id)
    polite, stubborn = asyncio.run(body())
    assert (polite.exit_code, polite.reason) == (7, "Error")
    assert stubborn.exit_code == 137


def test_zombies_are_reaped_by_init(runtime):
    # The inner sh forks `sleep` children and exits at once: they are orphaned
    # to the container's PID 1; once they exit, nothing may stay a zombie.
    st, log, _ = asyncio.run(runtime.run(("sh", "-c", """
        sh -c 'for i in 1 2 3 4 5; do sleep 0.1 & done'
        sleep 0.6
        ps -o stat,comm | grep -c '^Z' || true
    """)))
    assert st.exit_code == 0
    assert log.strip() == "0"


def test_remove_and_remove_sandbox_leave_nothing(runtime):
    async def body():
        sb = runtime.sandbox_config()
        sandbox = await runtime.rt.create_sandbox(sb)
        assert sandbox.netns_path.exists()
        cfg = runtime.container_config(sb.pod_id, ("sleep", "60"))
        st = await runtime.rt.start(cfg)
        pid = st.pid
        assert runtime.rt.sandboxes.get(sb.pod_id) is not None
        await runtime.rt.remove(cfg.id)        # running: killed, then removed
        await runtime.rt.remove(cfg.id)        # idempotent
        await runtime.rt.remove_sandbox(sb.pod_id)
        await runtime.rt.remove_sandbox(sb.pod_id)
        return pid
    pid = asyncio.run(body())
    assert leftovers(runtime.rt, pids=[pid]) == []


@pytest.mark.slow
def test_fifty_create_delete_cycles_leave_nothing(runtime):
    async def body():
        pids = []
        for _ in range(50):
            sb = runtime.sandbox_config()
            await runtime.rt.create_sandbox(sb)
            cfg = runtime.container_config(sb.pod_id, ("true",))
            pids.append((await runtime.rt.start(cfg)).pid)
            st = await runtime.rt.wait(cfg.id)
            assert st.exit_code == 0
            await runtime.rt.remove(cfg.id)
            await runtime.rt.remove_sandbox(sb.pod_id)
        return pids
    pids = asyncio.run(body())
    assert leftovers(runtime.rt, pids=pids) == []


def test_list_containers_and_sandboxes(runtime):
    async def body():
        sb = runtime.sandbox_config()
        await runtime.rt.create_sandbox(sb)
        a = runtime.container_config(sb.pod_id, ("sleep", "30"), name="a")
        b = runtime.container_config(sb.pod_id, ("true",), name="b")
        await runtime.rt.start(a)
        await runtime.rt.start(b)
        await runtime.rt.wait(b.id)
        listed = {s.name: s.state for s in await runtime.rt.list_containers()}
        pods = [s.pod_id for s in await runtime.rt.list_sandboxes()]
        stats = await runtime.rt.stats(a.id)
        return listed, pods, sb.pod_id, stats
    listed, pods, pod_id, stats = asyncio.run(body())
    assert listed == {"a": State.RUNNING, "b": State.EXITED}
    assert pods == [pod_id]
    assert stats.pids >= 1 and stats.memory_working_set_bytes > 0
