"""agent.memory: the agent's malloc arena limit takes effect, and trimming is safe to call."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Starts 8 threads that each allocate while all are alive, then prints how many arenas glibc made (malloc_info's <heap> count).
CODE = """
import ctypes, os, sys, threading
from agent.memory import limit_malloc_arenas, release_free_memory
if sys.argv[1] == "limit":
    assert limit_malloc_arenas(2)
keep, start, done = [], threading.Barrier(8), threading.Barrier(8)
def work():  # all 8 alive at once, as the agent's executor and gRPC threads are
    start.wait()
    keep.append([bytearray(4096) for _ in range(100)])
    done.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
release_free_memory()
libc = ctypes.CDLL(None)
libc.open_memstream.restype = ctypes.c_void_p
buf, size = ctypes.c_char_p(), ctypes.c_size_t()
stream = libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
libc.malloc_info(0, ctypes.c_void_p(stream))
libc.fclose(ctypes.c_void_p(stream))
print(buf.value.decode().count("<heap nr="))
"""


def arenas(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CODE, mode], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return int(out)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_limit_caps_the_arenas_threads_get():
    assert arenas("limit") <= 2 < arenas("nolimit")
