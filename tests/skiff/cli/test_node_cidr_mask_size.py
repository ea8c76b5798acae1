"""`skiff up --node-cidr-mask-size N` (issue 17: 500 pods on one node need more than a /24's 253
addresses): passed to the control plane, which cuts each node's pod CIDR from --cluster-cidr at
that prefix, and recorded in DATA/run/cluster.json so `down`, `status` and the supervisor see it.
Bad values are refused before anything starts (test_up_checks_flags_first.py)."""
from __future__ import annotations

from pathlib import Path

from skiff.cli._cluster import ClusterConfig, components, load_config, save_config
from skiff.cli.main import parse_args
from skiff.cli.up import _config


def _controlplane_argv(config: ClusterConfig) -> tuple[str, ...]:
    return next(c for c in components(config) if c.name == "controlplane").argv


def _flag(argv: tuple[str, ...], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_the_control_plane_gets_the_mask_size_given_to_up(tmp_path: Path):
    args = parse_args(["up", "--data-dir", str(tmp_path), "--node-name", "n1", "--max-pods", "500",
                       "--node-cidr-mask-size", "23"])
    config = _config(args)
    assert config.node_cidr_mask_size == 23
    assert _flag(_controlplane_argv(config), "--node-cidr-mask-size") == "23"


def test_the_default_is_kubernetes_slash_24(tmp_path: Path):
    config = ClusterConfig(data_dir=tmp_path, run_dir=tmp_path / "run", node_name="n1")
    assert _flag(_controlplane_argv(config), "--node-cidr-mask-size") == "24"


def test_the_mask_size_is_recorded_with_the_cluster(tmp_path: Path):
    config = ClusterConfig(data_dir=tmp_path, run_dir=tmp_path / "run", node_name="n1", node_cidr_mask_size=22)
    config.pid_dir.mkdir(parents=True)
    save_config(config)
    fresh = ClusterConfig(data_dir=tmp_path, run_dir=tmp_path / "run", node_name="n1")
    assert load_config(fresh).node_cidr_mask_size == 22
