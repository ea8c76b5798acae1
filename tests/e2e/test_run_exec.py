"""`skiff run`, `skiff exec` and `skiff logs -f` against a real node: the
command-line pod runs, exec passes stdin, stdout, stderr and the exit code
through, and a followed log ends when the container does."""
from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]


def test_run_exec_and_follow_logs(private_cluster):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    assert c.skiff("image", "--data-dir", str(c.data_dir), "bootstrap", "busybox").returncode == 0
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr

    run = c.skiff("run", "sleeper", "--image", "busybox", "--", "sleep", "300")
    assert (run.returncode, run.stdout) == (0, "pod/sleeper created\n"), run.stderr
    ready = c.skiff("wait", "pod", "sleeper", "--for=condition=Ready", "--timeout", "120s")
    assert ready.returncode == 0, ready.stderr + c.skiff("describe", "pod", "sleeper").stdout

    result = c.skiff("exec", "sleeper", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")
    piped = subprocess.run([sys.executable, "-m", "skiff.cli.main", "exec", "-i", "sleeper", "--", "sh", "-c",
                            "tr a-z A-Z; hostname"], input="hello from stdin\n", capture_output=True, text=True,
                           env=c.env(), timeout=60)
    assert (piped.returncode, piped.stdout) == (0, "HELLO FROM STDIN\nsleeper\n"), piped.stderr
    assert _exec_in_a_terminal(c, "sleeper") == ["33 101", "40 120"]
    missing = c.skiff("exec", "sleeper", "-c", "nope", "--", "true")
    assert missing.returncode == 1 and missing.stderr.startswith("error: ") and missing.stderr.count("\n") == 1

    counter = c.skiff("run", "counter", "--image", "busybox", "--restart", "Never", "--",
                      "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 1; done")
    assert counter.returncode == 0, counter.stderr
    assert c.skiff("wait", "pod", "counter", "--for=condition=Ready", "--timeout", "120s").returncode == 0
    followed = c.skiff("logs", "-f", "counter", timeout=120)
    assert (followed.returncode, followed.stdout) == (0, "line 1\nline 2\nline 3\n"), followed.stderr
    tail = c.skiff("logs", "counter", "--tail", "1")
    assert tail.stdout == "line 3\n"


def _exec_in_a_terminal(c, pod: str) -> list[str]:
    """`skiff exec -it POD -- ...` on a pty of 33x101, resized to 40x120 while
    it runs (as a terminal window is): the sizes the command saw."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "skiff.cli.main", "exec", "-it", pod, "--",
                             "sh", "-c", "stty size; read x; stty size"],
                            stdin=slave, stdout=slave, stderr=slave, env=c.env(), start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    resized = False
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:   # EIO: every slave fd is closed
                    break
                if not chunk:
                    break
                out += chunk
            if b"33 101" in out and not resized:
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
                os.kill(proc.pid, signal.SIGWINCH)   # what the kernel sends the terminal's foreground job
                time.sleep(0.5)
                os.write(master, b"go\r")
                resized = True
            if proc.poll() is not None and not select.select([master], [], [], 0.2)[0]:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    assert proc.returncode == 0, out
    return [line for line in out.decode(errors="replace").replace("\r", "").splitlines()
            if line.strip() and line.strip()[0].isdigit()]
