"""Container log rotation (containerLogMaxSize / containerLogMaxFiles) and
reading a log as one stream across its rotated files, following included."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from agent.containerlogs import ContainerLogManager, LogStream, rotated_files


def live_log(tmp_path: Path) -> Path:
    path = tmp_path / "pods" / "default_web_uid1" / "main" / "0.log"
    path.parent.mkdir(parents=True)
    path.touch()
    return path


class Program:
    """A container's output: appended to the log through its own O_APPEND fd, as the real one writes."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self.n = 0

    def lines(self, count: int) -> bytes:
        out = b"".join(f"line {self.n + i:07d} {'x' * 40}\n".encode() for i in range(count))
        self.n += count
        os.write(self.fd, out)
        return out

    def close(self) -> None:
        os.close(self.fd)


def expected(count: int, start: int = 0) -> bytes:
    return b"".join(f"line {i:07d} {'x' * 40}\n".encode() for i in range(start, start + count))


async def read_all(manager, path: Path, **kw) -> bytes:
    return b"".join([chunk async for chunk in LogStream(manager, path).read(**kw)])


def test_a_log_past_max_size_is_rotated_and_read_whole(tmp_path):
    async def scenario():
        path = live_log(tmp_path)
        manager = ContainerLogManager(pods_dir=tmp_path / "pods", max_size=64 * 1024, max_files=5)
        program = Program(path)
        written = b""
        for _ in range(3):
            written += program.lines(2000)   # ~100 KiB each time
            await manager.rotate_all()
        assert path.stat().st_size <= 64 * 1024 + 4096 * 2   # what is left: under a block past the cut
        rotated = rotated_files(path)
        assert len(rotated) == 3
        assert await read_all(manager, path) == written   # nothing lost, nothing twice
        tail = await read_all(manager, path, tail_lines=3)
        assert tail == expected(3, start=5997)
        program.close()
    asyncio.run(scenario())


def test_max_files_counts_the_live_file(tmp_path):
    async def scenario():
        path = live_log(tmp_path)
        manager = ContainerLogManager(pods_dir=tmp_path / "pods", max_size=16 * 1024, max_files=3)
        program = Program(path)
        for _ in range(6):
            program.lines(1000)
            await manager.rotate_all()
        assert len(rotated_files(path)) == 2   # + the live file = 3
        data = await read_all(manager, path)
        assert data.endswith(expected(10, start=5990)) and len(data) < 6000 * 53
        program.close()
    asyncio.run(scenario())


def test_follow_goes_on_across_rotations_without_gap_or_repeat(tmp_path):
    async def scenario():
        path = live_log(tmp_path)
        manager = ContainerLogManager(pods_dir=tmp_path / "pods", max_size=32 * 1024, max_files=20)
        program = Program(path)
        done = asyncio.Event()
        got: list[bytes] = []

        async def follower():
            async for chunk in LogStream(manager, path).read(follow=done.is_set, poll_seconds=0.001):
                got.append(chunk)
        task = asyncio.create_task(follower())
        for round_ in range(20):
            program.lines(300)
            if round_ % 3 == 0:
                await asyncio.sleep(0.005)   # let the follower read part of it first
            await manager.rotate_all()
        done.set()
        await asyncio.wait_for(task, 30)
        assert len(rotated_files(path)) >= 5
        assert b"".join(got) == expected(6000)
        program.close()
    asyncio.run(scenario())


def test_copy_truncate_where_the_head_cannot_be_cut(tmp_path, monkeypatch):
    import agent.containerlogs as cl
    monkeypatch.setattr(cl, "_collapse", lambda fd, n: False)   # as on tmpfs
    async def scenario():
        path = live_log(tmp_path)
        manager = ContainerLogManager(pods_dir=tmp_path / "pods", max_size=8 * 1024, max_files=5)
        program = Program(path)
        written = program.lines(500)
        await manager.rotate_all()
        assert path.stat().st_size == 0
        written += program.lines(10)
        assert await read_all(manager, path) == written
        program.close()
    asyncio.run(scenario())


def test_too_few_max_files_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        ContainerLogManager(pods_dir=tmp_path, max_files=1)


def test_agent_flags():
    from agent.config import ConfigError, config_from_args
    cfg = config_from_args(["--node-name", "n1"])
    assert (cfg.container_log_max_size, cfg.container_log_max_files) == (10 * 1024 * 1024, 5)
    cfg = config_from_args(["--node-name", "n1", "--container-log-max-size", "1Mi", "--container-log-max-files", "3"])
    assert (cfg.container_log_max_size, cfg.container_log_max_files) == (1024 * 1024, 3)
    for args, words in ((["--container-log-max-size", "lots"], "--container-log-max-size: invalid quantity"),
                        (["--container-log-max-size", "1e999999"], "too large"),
                        (["--container-log-max-size", "1k"], "at least 4Ki"),
                        (["--container-log-max-files", "1"], "at least 2")):
        with pytest.raises(ConfigError, match=words):
            config_from_args(["--node-name", "n1", *args])


def test_rotated_names_stay_in_order_when_the_clock_stands_still(tmp_path):
    async def scenario():
        path = live_log(tmp_path)
        manager = ContainerLogManager(pods_dir=tmp_path / "pods", max_size=8192, max_files=10, clock=lambda: 1e9)
        program = Program(path)
        written = b""
        for _ in range(3):
            written += program.lines(400)
            await manager.rotate_all()
        assert len(rotated_files(path)) == 3
        assert await read_all(manager, path) == written
        program.close()
    asyncio.run(scenario())


def test_from_end_follows_only_what_comes_next_across_a_rotation(tmp_path):
    """attach: the output from now on, not the history, and a rotation while
    following neither loses nor repeats a byte."""
    async def scenario():
        path = live_log(tmp_path)
        manager = ContainerLogManager(pods_dir=tmp_path / "pods", max_size=32 * 1024, max_files=20)
        program = Program(path)
        program.lines(1000)             # before the attach: not shown
        done = asyncio.Event()
        stream = LogStream(manager, path).read(follow=done.is_set, poll_seconds=0.001, from_end=True)
        first = asyncio.ensure_future(anext(stream, b""))
        await asyncio.sleep(0)          # the first step has taken its position
        program.lines(500)
        await manager.rotate_all()
        program.lines(500)
        done.set()
        got = [await first] + [chunk async for chunk in stream]
        assert len(rotated_files(path)) >= 1
        assert b"".join(got) == expected(1000, start=1000)
        program.close()
    asyncio.run(scenario())
