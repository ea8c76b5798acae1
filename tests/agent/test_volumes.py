"""Pod volumes on the node: emptyDir (disk and tmpfs), hostPath types, subPath containment."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.containers import ContainerConfigError, PodPaths
from agent.volumes import container_mounts, prepare_volumes, release_volumes
from proto.skiff.v1 import types_pb2


def pod_with_volumes(*volumes: types_pb2.Volume, mounts: list[tuple[str, str, str]]) -> types_pb2.Pod:
    pod = types_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "v", "default", "uid-v"
    pod.spec.volumes.extend(volumes)
    c = pod.spec.containers.add(name="app", image="busybox")
    for name, path, sub in mounts:
        c.volume_mounts.add(name=name, mount_path=path, sub_path=sub)
    return pod


def paths_in(tmp_path: Path) -> PodPaths:
    return PodPaths.of(pods_dir=tmp_path / "pods", namespace="default", name="v", uid="uid-v")


def test_empty_dir_is_a_directory_under_the_pod(tmp_path):
    vol = types_pb2.Volume(name="scratch", empty_dir=types_pb2.EmptyDirVolumeSource())
    pod = pod_with_volumes(vol, mounts=[("scratch", "/scratch", ""), ("scratch", "/sub", "a/b")])
    paths = paths_in(tmp_path)
    prepare_volumes(pod=pod, paths=paths)
    mounts = container_mounts(pod=pod, container=pod.spec.containers[0], paths=paths)
    assert [(m.target, Path(m.source)) for m in mounts] == [
        ("/scratch", paths.volume_dir("scratch")), ("/sub", paths.volume_dir("scratch").resolve() / "a" / "b")]
    assert all(Path(m.source).is_dir() and m.kind == "bind" for m in mounts)


def test_sub_path_may_not_leave_its_volume(tmp_path):
    vol = types_pb2.Volume(name="scratch", empty_dir=types_pb2.EmptyDirVolumeSource())
    paths = paths_in(tmp_path)
    for sub in ("../../etc", "/etc"):
        pod = pod_with_volumes(vol, mounts=[("scratch", "/x", sub)])
        with pytest.raises(ContainerConfigError, match="subPath"):
            container_mounts(pod=pod, container=pod.spec.containers[0], paths=paths)
    # Through a symlink planted in the volume:
    paths.volume_dir("scratch").mkdir(parents=True, exist_ok=True)
    os.symlink("/", paths.volume_dir("scratch") / "escape")
    pod = pod_with_volumes(vol, mounts=[("scratch", "/x", "escape")])
    with pytest.raises(ContainerConfigError, match="leaves volume"):
        container_mounts(pod=pod, container=pod.spec.containers[0], paths=paths)


def test_host_path_types(tmp_path):
    def mounts_for(path: Path, kind: str):
        vol = types_pb2.Volume(name="h", host_path=types_pb2.HostPathVolumeSource(path=str(path), type=kind))
        pod = pod_with_volumes(vol, mounts=[("h", "/h", "")])
        return container_mounts(pod=pod, container=pod.spec.containers[0], paths=paths_in(tmp_path))

    created = tmp_path / "made" / "here"
    assert mounts_for(created, "DirectoryOrCreate")[0].source == str(created) and created.is_dir()
    made_file = tmp_path / "f" / "file.txt"
    mounts_for(made_file, "FileOrCreate")
    assert made_file.is_file()
    with pytest.raises(ContainerConfigError, match="is not a directory"):
        mounts_for(tmp_path / "absent", "Directory")
    with pytest.raises(ContainerConfigError, match="is not a file"):
        mounts_for(tmp_path, "File")
    with pytest.raises(ContainerConfigError, match="absolute"):
        mounts_for(Path("relative/dir"), "")


def test_missing_volume_is_named():
    pod = pod_with_volumes(mounts=[("nosuch", "/x", "")])
    with pytest.raises(ContainerConfigError, match="no volume named 'nosuch'"):
        container_mounts(pod=pod, container=pod.spec.containers[0], paths=PodPaths(root=Path("/nonexistent")))


@pytest.mark.root
def test_memory_empty_dir_is_a_tmpfs_released_with_the_pod(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount tmpfs")
    vol = types_pb2.Volume(name="mem", empty_dir=types_pb2.EmptyDirVolumeSource(medium="Memory", size_limit="8Mi"))
    pod = pod_with_volumes(vol, mounts=[("mem", "/mem", "")])
    paths = paths_in(tmp_path)
    target = str(paths.volume_dir("mem").resolve()) if paths.volume_dir("mem").exists() else None
    try:
        prepare_volumes(pod=pod, paths=paths)
        prepare_volumes(pod=pod, paths=paths)  # idempotent: one mount, not two
        target = str(paths.volume_dir("mem").resolve())
        lines = [l for l in Path("/proc/self/mountinfo").read_text().splitlines() if l.split()[4] == target]
        assert len(lines) == 1 and " tmpfs skiff-emptydir " in lines[0]
        assert os.statvfs(target).f_blocks * os.statvfs(target).f_frsize == 8 << 20
    finally:
        release_volumes(paths=paths)
    assert target not in Path("/proc/self/mountinfo").read_text()
