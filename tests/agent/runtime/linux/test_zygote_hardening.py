"""The zygote survives any request (issue 15): a start too large for its
socket, or one the kernel refuses to exec, fails that one container with a
reason that says so; the zygote and the agent's attachment stay, and the next
container starts. A zygote that dies anyway is replaced at once, and the
runtime says it is unhealthy while it cannot start containers."""
from __future__ import annotations

import asyncio
import os
import signal

import pytest

from agent.runtime.interface import StartError, State
from agent.runtime.linux import aio

pytestmark = pytest.mark.root

MIB = 1 << 20


async def _start_fails(runtime, sb, **kw) -> str:
    cfg = runtime.container_config(sb.pod_id, kw.pop("args", ("true",)), **kw)
    with pytest.raises(StartError) as info:
        await runtime.rt.start(cfg)
    await runtime.rt.remove(cfg.id)
    return str(info.value)


@pytest.mark.parametrize("big", [
    {"args": ("echo", "x" * MIB)},
    {"env": (("BIG", "x" * MIB),)},
    {"working_dir": "/" + "d" * MIB},
    {"args": ("echo", "x" * (5 * MIB))},
], ids=["1MiB-arg", "1MiB-env", "1MiB-workingDir", "5MiB-arg"])
def test_a_huge_start_fails_alone_and_the_next_container_starts(runtime, big):
    async def body():
        sb = runtime.sandbox_config()
        await runtime.rt.create_sandbox(sb)
        zygote = runtime.rt.zygote.pid
        message = await _start_fails(runtime, sb, **big)
        st, log, _ = await runtime.run(("echo", "next"), sandbox=sb)
        return message, zygote, st, log
    message, zygote, st, log = asyncio.run(body())
    print(message[:300])
    assert "zygote" not in message.lower() or "too large" in message, message
    assert any(w in message for w in ("too long", "too large", "Argument list too long")), message
    assert len(message) < 1100
    assert (st.state, st.exit_code, log) == (State.EXITED, 0, "next\n")
    assert runtime.rt.zygote.pid == zygote   # the same zygote served on


def test_a_dead_zygote_is_replaced_at_the_health_check_and_unhealthy_until_then(runtime, monkeypatch):
    from agent.runtime.linux import zygote as zmod
    rt = runtime.rt

    async def body():
        assert await rt.check_health() is None
        old = rt.zygote.pid
        os.kill(old, signal.SIGKILL)
        await aio.wait_pidfd(old, alive=lambda: True)
        rt.zygote.reap_if_exited()
        # A new one cannot be had (say the interpreter cannot start): unhealthy, with the reason.
        real = zmod.Zygote.attach_or_spawn
        monkeypatch.setattr(zmod.Zygote, "attach_or_spawn",
                            classmethod(lambda cls, run_dir: (_ for _ in ()).throw(zmod.ZygoteError("no way"))))
        problem = await rt.check_health()
        assert problem == "container runtime is down: cannot replace the zygote: no way"
        assert await rt.check_health() == problem   # still trying, still saying so
        monkeypatch.setattr(zmod.Zygote, "attach_or_spawn", real)
        assert await rt.check_health() is None
        new = rt.zygote.pid
        assert new != old and os.path.exists(f"/proc/{new}")
        st, log, _ = await runtime.run(("echo", "after"))
        return st, log
    st, log = asyncio.run(body())
    assert (st.exit_code, log) == (0, "after\n")


def test_a_reply_whose_caller_was_cancelled_is_not_taken_for_the_next_one(runtime):
    rt = runtime.rt

    async def body():
        sb = runtime.sandbox_config()
        await rt.create_sandbox(sb)
        abandoned = asyncio.ensure_future(rt.zygote.request({"op": "hello"}, {}))
        await asyncio.sleep(0)   # sent; now waiting for the reply
        abandoned.cancel()
        await asyncio.sleep(0.2)   # the reply arrives with nobody waiting
        assert await rt.check_health() is None   # not mistaken for a hang-up
        pid = rt.zygote.pid
        st, log, _ = await runtime.run(("echo", "mine"), sandbox=sb)
        return pid, st, log
    pid, st, log = asyncio.run(body())
    assert (st.exit_code, log) == (0, "mine\n") and rt.zygote.pid == pid
