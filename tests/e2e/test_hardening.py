"""Issue 15 end to end, as a user meets it: on a real cluster (`skiff up`,
root, the real runtime), a pod with a 700 KB argument fails alone with a reason
that says so while the node stays Ready and starts the next pod, and a pod
that prints more than containerLogMaxSize (10Mi) has its log rotated while
`skiff logs` still returns all of it."""
from __future__ import annotations

import os
import time

import pytest

from tests.e2e.test_hello import _log_tails

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.e2e, pytest.mark.slow]

MIB = 1 << 20


def _until(what, check, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_a_huge_argument_fails_its_pod_alone_and_logs_rotate(private_cluster, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    c = private_cluster
    up = c.skiff(*c.up_args("--detach")[3:], timeout=180)
    assert up.returncode == 0, up.stderr + _log_tails(c)

    # 1. A 700 KB argument (over the zygote socket's old limit and the kernel's 128 KiB per argument).
    #    Created, not applied: apply's last-applied copy would pass the 256 KiB annotation limit
    #    (as with kubectl apply):
    #    that pod fails with the kernel's reason; the node stays Ready and runs the next.
    manifest = tmp_path / "big.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: big}\nspec:\n  restartPolicy: Never\n"
                        "  containers:\n  - name: c\n    image: busybox\n    command: [echo, " + "x" * 700_000 + "]\n")
    applied = c.skiff("create", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr

    def reason() -> str:
        out = c.skiff("get", "pod", "big", "-o", "jsonpath={.status.containerStatuses[0].state}").stdout
        return out if "Argument list too long" in out else ""
    assert _until("the start error", reason, 120), c.skiff("describe", "pod", "big").stdout[-3000:]
    run = c.skiff("run", "after", "--image", "busybox", "--restart", "Never", "--", "echo", "still starting pods")
    assert run.returncode == 0, run.stderr
    waited = c.skiff("wait", "pod", "after", "--for=jsonpath={.status.phase}=Succeeded", "--timeout", "120s")
    assert waited.returncode == 0, waited.stderr + _log_tails(c)
    assert c.skiff("logs", "after").stdout == "still starting pods\n"
    nodes = c.skiff("get", "nodes")
    assert nodes.stdout.splitlines()[1].split()[:2] == ["skiff-test-node", "Ready"]

    # 2. 24 MiB of output: rotated past 10Mi (the agent checks every 10 s), read back whole.
    chatty = c.skiff("run", "chatty", "--image", "busybox", "--restart", "Never", "--", "sh", "-c",
                     "i=0; while [ $i -lt 24 ]; do head -c 1048576 /dev/zero | tr '\\0' x; i=$((i+1)); "
                     "sleep 1; done; echo; echo the-end; sleep 30")
    assert chatty.returncode == 0, chatty.stderr
    assert _until("a rotated log", lambda: list((c.data_dir / "pods").glob("default_chatty_*/*/0.log.*")), 90), \
        _log_tails(c)
    assert _until("the end", lambda: "the-end" in c.skiff("logs", "chatty", "--tail", "1").stdout, 90)
    logs = c.skiff("logs", "chatty", timeout=300)
    assert logs.returncode == 0, logs.stderr
    assert len(logs.stdout) == 24 * MIB + len("\nthe-end\n") and logs.stdout.endswith("x\nthe-end\n")
