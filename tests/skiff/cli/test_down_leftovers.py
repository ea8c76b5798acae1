"""`skiff down --purge` with the agent gone: a pod's volume tmpfs (a Secret, a projected
token) left mounted by a node that did not delete its pods in time - or by a purge that was
itself cut short - is unmounted, so the data dir can be removed."""
from __future__ import annotations

import os

import pytest

from agent.volumes import SECRET_TMPFS_SOURCE, _mount_tmpfs
from skiff.cli.up import _remove_leftover_pods

pytestmark = pytest.mark.root


def _mounted(under) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(under))]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")
def test_purge_unmounts_a_left_pod_s_token_volume(tmp_path, capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    volume = data / "pods" / "default_web_0b7c5d2e-uid" / "volumes" / "kube-api-access-x1x2y"
    volume.mkdir(parents=True)
    _mount_tmpfs(volume, size="", source=SECRET_TMPFS_SOURCE, mode="0755")
    (volume / "token").write_text("a token")
    try:
        assert _mounted(tmp_path) == [str(volume)]
        _remove_leftover_pods(run, data, "skiff-test-leftovers")
        assert _mounted(tmp_path) == []
        assert "removing the pods' leftover containers, sandboxes and volumes ... ok" in capsys.readouterr().out
    finally:
        for point in _mounted(tmp_path):
            os.system(f"umount -l {point}")


def test_nothing_left_is_nothing_to_do(tmp_path, capsys):
    _remove_leftover_pods(tmp_path / "run", tmp_path / "data", "skiff-test-leftovers")
    assert capsys.readouterr().out == ""
