"""`skiff status` without a cluster (the running cluster's table is checked
end to end in tests/e2e/test_supervise.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_status_without_a_cluster_says_so(tmp_path):
    r = subprocess.run([sys.executable, "-m", "skiff.cli.main", "status", "--data-dir", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (f"error: no cluster was started from {tmp_path} (no {tmp_path}/run/cluster.json); "
                        "`skiff up` starts one\n")
