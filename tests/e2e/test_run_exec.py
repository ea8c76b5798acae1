"""`skiff run`, `skiff exec` and `skiff logs -f` against a real node: the
command-line pod runs, exec passes stdin, stdout, stderr and the exit code
through, and a followed log ends when the container does."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.e2e.terminal import sizes_seen_in_a_terminal

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
    """`skiff exec -it POD -- ...` on a resized terminal: the sizes the command saw."""
    return sizes_seen_in_a_terminal([sys.executable, "-m", "skiff.cli.main", "exec", "-it", pod, "--",
                                     "sh", "-c", "stty size; read x; stty size"], c.env())
