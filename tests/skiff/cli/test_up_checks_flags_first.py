"""`skiff up` checks every flag before it starts anything (issue 15, item 8):
a flag the agent would refuse once failed only after etcd and the control
plane were up."""
import subprocess
import sys

import pytest

from tests.conftest import ROOT, free_port


@pytest.mark.parametrize("flags, words", [
    (["--node-name", "Not_A_Node"], "--node-name: 'Not_A_Node' is not a lowercase DNS name"),
    (["--node-name", "n1", "--bridge", "skiff-far-too-long"], "--bridge: 'skiff-far-too-long'"),
    (["--node-name", "n1", "--cgroup-parent", "a/b"], "--cgroup-parent"),
    (["--node-name", "n1", "--api-port", "70000"], "the API port 70000: must be between 1 and 65535"),
    (["--node-name", "n1", "--eviction-hard", "memory.available>1Gi"], "--eviction-hard: eviction threshold"),
    (["--node-name", "n1", "--hollow-nodes", "-1"], "--hollow-nodes: must not be negative, got -1"),
    (["--node-name", "n1", "--max-pods", "0"], "--max-pods: must be at least 1, got 0"),
    (["--node-name", "n1", "--service-cluster-ip-range", "10.244.3.0/24"],
     "--service-cluster-ip-range 10.244.3.0/24: overlaps --cluster-cidr 10.244.0.0/16"),
    (["--node-name", "n1", "--service-cluster-ip-range", "10.213.0.0/16"], "overlaps --node-cidr 10.213.0.0/24"),
    (["--node-name", "n1", "--service-node-port-range", "32767-30000"], "--service-node-port-range '32767-30000'"),
    (["--node-name", "n1", "--max-pods", "500"],
     "--node-cidr-mask-size 24: a node's /24 holds 253 pod addresses (besides its network, gateway and broadcast "
     "ones), fewer than --max-pods 500; use /23 or shorter"),
    (["--node-name", "n1", "--node-cidr-mask-size", "16"],
     "--node-cidr-mask-size 16: must be longer than --cluster-cidr 10.244.0.0/16's /16 and at most /32"),
    (["--node-name", "n1", "--cluster-cidr", "10.244.0.0/24", "--node-cidr-mask-size", "25", "--hollow-nodes", "2"],
     "--node-cidr-mask-size 25: --cluster-cidr 10.244.0.0/24 has room for 2 node CIDRs of /25, not 3 nodes"),
])
def test_a_bad_flag_is_refused_before_anything_starts(tmp_path, flags, words):
    ports = [str(free_port()) for _ in range(6)]
    port_flags = [f for pair in zip(("--etcd-port", "--etcd-peer-port", "--api-port", "--controlplane-metrics-port",
                                     "--agent-port", "--agent-metrics-port"), ports) for f in pair]
    result = subprocess.run(
        [sys.executable, "-m", "skiff.cli.main", "up", "--data-dir", str(tmp_path / "data"),
         "--run-dir", str(tmp_path / "run"), *port_flags, *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result
    assert words in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "starting" not in result.stdout
    assert not (tmp_path / "data" / "etcd").exists()
    assert not list((tmp_path / "data").glob("run/*.pid"))
