"""exec: a command inside a running container — its namespaces, cgroup and
rootfs — with stdin, stdout, stderr, a pty, and the exit code."""
from __future__ import annotations

import asyncio

import pytest

from agent.runtime.interface import State, TerminalSize

pytestmark = pytest.mark.root


class Collect:
    def __init__(self) -> None:
        self.out = b""
        self.err = b""

    async def stdout(self, data: bytes) -> None:
        self.out += data

    async def stderr(self, data: bytes) -> None:
        self.err += data


async def _chunks(*items: bytes):
    for item in items:
        yield item


async def _running(runtime, **kw):
    sb = runtime.sandbox_config(hostname="exec-pod")
    await runtime.rt.create_sandbox(sb)
    cfg = runtime.container_config(sb.pod_id, ("sh", "-c", "echo hello > /tmp/state; sleep 60"), **kw)
    await runtime.rt.start(cfg)
    return cfg


def test_exec_sees_the_container_and_passes_the_exit_code(runtime):
    async def body():
        cfg = await _running(runtime)
        await asyncio.sleep(0.2)
        out = Collect()
        res = await runtime.rt.exec(cfg.id, ["sh", "-c", "cat /tmp/state; hostname; echo oops >&2; "
                                             "cat /proc/1/comm; exit 4"], output=out)
        cgroup = Collect()
        await runtime.rt.exec(cfg.id, ["cat", "/proc/self/cgroup"], output=cgroup)
        status = await runtime.rt.status(cfg.id)
        return res, out, cgroup, status
    res, out, cgroup, status = asyncio.run(body())
    assert res.exit_code == 4
    assert out.out.decode().split() == ["hello", "exec-pod", "sleep"]   # PID 1 is the program
    assert out.err == b"oops\n"
    assert "memory:/\n" in cgroup.out.decode()   # in the container's cgroup (and its namespace)
    assert status.state is State.RUNNING          # exec does not disturb the container


def test_exec_stdin(runtime):
    async def body():
        cfg = await _running(runtime)
        out = Collect()
        res = await runtime.rt.exec(cfg.id, ["sh", "-c", "tr a-z A-Z; echo done"],
                                    stdin=_chunks(b"abc\n", b"def\n"), output=out)
        return res, out
    res, out = asyncio.run(body())
    assert (res.exit_code, out.out) == (0, b"ABC\nDEF\ndone\n")


def test_exec_with_a_tty(runtime):
    async def body():
        cfg = await _running(runtime)
        out = Collect()
        res = await runtime.rt.exec(cfg.id, ["sh", "-c", "tty; [ -t 1 ] && echo is-a-tty"], tty=True,
                                    output=out)
        return res, out
    res, out = asyncio.run(body())
    assert res.exit_code == 0
    lines = out.out.decode().replace("\r", "").split()
    assert lines[0].startswith("/dev/pts/") and lines[1] == "is-a-tty"


def test_exec_tty_has_the_given_size_and_follows_resizes(runtime):
    async def stdin():
        await asyncio.sleep(0.3)   # the first `stty size` has run
        yield TerminalSize(rows=40, cols=120)
        yield b"go\n"

    async def body():
        cfg = await _running(runtime)
        out = Collect()
        res = await runtime.rt.exec(cfg.id, ["sh", "-c", "stty size; read x; stty size"], tty=True,
                                    size=TerminalSize(rows=30, cols=100), stdin=stdin(), output=out)
        return res, out
    res, out = asyncio.run(body())
    lines = [line for line in out.out.decode().replace("\r", "").splitlines() if line.strip()]
    assert res.exit_code == 0
    assert lines[0] == "30 100" and lines[-1] == "40 120"


def test_exec_of_a_missing_program(runtime):
    async def body():
        cfg = await _running(runtime)
        out = Collect()
        res = await runtime.rt.exec(cfg.id, ["nosuch"], output=out)
        return res, out
    res, out = asyncio.run(body())
    assert res.exit_code == 127
    assert out.err.decode().strip() == 'exec: "nosuch": executable file not found in $PATH'


def test_exec_returns_when_a_background_child_keeps_stdout_open(runtime):
    async def body():
        cfg = await _running(runtime)
        out = Collect()
        res = await runtime.rt.exec(cfg.id, ["sh", "-c", "sleep 600 & echo started"], output=out)
        return res, out
    res, out = asyncio.run(body())
    assert (res.exit_code, out.out) == (0, b"started\n")
