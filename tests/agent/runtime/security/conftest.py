"""Running security code in a forked child, as the runtime does before execve.

Process security is irreversible for the process that applies it, so every
test applies it in a child forked from the (single-threaded) test process:

`in_child(fn)` runs fn() in a child and returns its JSON-able result (or
raises ChildFailed with the child's exception text).
`after_exec(fn, argv)` runs fn() in a child, then execs argv there and
returns (exit status, stdout): what the container's command would see.
"""
from __future__ import annotations

import json
import os
import traceback
from typing import Any, Callable

import pytest


class ChildFailed(Exception):
    pass


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _fork(body: Callable[[int], None]) -> tuple[int, bytes]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.close(r)
            body(w)
            code = 0
        except BaseException:
            try:
                os.write(w, json.dumps({"error": traceback.format_exc()}).encode())
            except BaseException:
                pass
        finally:
            os._exit(code)
    os.close(w)
    try:
        data = _read_all(r)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    return status, data


def run_in_child(fn: Callable[[], Any]) -> Any:
    status, data = _fork(lambda w: os.write(w, json.dumps({"ok": fn()}).encode()))
    result = json.loads(data or b"{}")
    if "error" in result or os.waitstatus_to_exitcode(status) != 0:
        raise ChildFailed(result.get("error", f"child ended with status {status}"))
    return result["ok"]


def run_after_exec(fn: Callable[[], Any], argv: list[str]) -> tuple[int, str]:
    def body(w: int) -> None:
        fn()
        os.dup2(w, 1)
        os.execv(argv[0], argv)

    status, data = _fork(body)
    text = data.decode(errors="replace")
    if text.startswith('{"error"'):
        raise ChildFailed(json.loads(text)["error"])
    return os.waitstatus_to_exitcode(status), text


@pytest.fixture
def in_child():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    return run_in_child


@pytest.fixture
def after_exec():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    return run_after_exec
