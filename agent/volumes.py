"""Pod volumes on the node: emptyDir and hostPath, and the directories of
configMap, secret, downwardAPI and projected volumes (whose files
agent.configvolumes writes), made ready before a container starts and turned
into the runtime's bind `Mount`s.

Secret and projected volumes get a tmpfs of their own (source
"skiff-secret") before anything is written to them, so their data is never on
the node's disk; all four kinds are mounted read-only, as kubelet mounts them.

An emptyDir is a directory under the pod's dir (<pods>/<ns>_<name>_<uid>/
volumes/<name>), shared by the pod's containers and removed with the pod; with
`medium: Memory` a tmpfs (source name "skiff-emptydir") is mounted on that
directory on the host, so every container of the pod sees the same memory
filesystem. A hostPath is checked against its `type` (Directory, File, ...)
and created for DirectoryOrCreate / FileOrCreate. subPath may not climb out
of its volume, even through a symlink. Symlinks inside the container's rootfs
at the mount target are the runtime's to refuse.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

from agent.containers import ContainerConfigError, PodPaths
from agent.runtime.interface import Mount
from proto.skiff.v1 import types_pb2
from skiff.api.quantity import memory_bytes

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
MNT_DETACH = 2
TMPFS_SOURCE = "skiff-emptydir"
SECRET_TMPFS_SOURCE = "skiff-secret"
CONFIG_SOURCES = ("config_map", "secret", "downward_api", "projected")
MEMORY_SOURCES = ("secret", "projected")


def _mount_tmpfs(target: Path, *, size: str, source: str = TMPFS_SOURCE, mode: str = "0777") -> None:
    # tmpfs takes bytes (or k/m/g), not Kubernetes' "64Mi".
    options = f"mode={mode},size={memory_bytes(size)}" if size else f"mode={mode}"
    if _libc.mount(source.encode(), str(target).encode(), b"tmpfs", 0, options.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount(tmpfs, {target}): {os.strerror(err)}")


def _umount(target: Path) -> None:
    if _libc.umount2(str(target).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount2({target}): {os.strerror(err)}")


def _mounted_under(root: Path) -> list[Path]:
    """Mount points at or under root, deepest first, from /proc/self/mountinfo."""
    prefix = str(root.resolve() if root.exists() else root)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def prepare_volumes(*, pod: types_pb2.Pod, paths: PodPaths, tmpfs: bool = True) -> None:
    """Make every emptyDir of the pod exist (tmpfs mounted for medium Memory, and for Secret and
    projected volumes, unless `tmpfs` is False: plain directories then). Idempotent."""
    mounted = set(_mounted_under(paths.root / "volumes")) if (paths.root / "volumes").exists() else set()
    for volume in pod.spec.volumes:
        target = paths.volume_dir(volume.name)
        if any(volume.HasField(s) for s in MEMORY_SOURCES):
            target.mkdir(parents=True, exist_ok=True, mode=0o755)
            if tmpfs and target.resolve() not in mounted:
                _mount_tmpfs(target, size="", source=SECRET_TMPFS_SOURCE, mode="0755")
            continue
        if not volume.HasField("empty_dir"):
            continue
        target.mkdir(parents=True, exist_ok=True)
        if tmpfs and volume.empty_dir.medium == "Memory" and target.resolve() not in mounted:
            _mount_tmpfs(target, size=volume.empty_dir.size_limit)


def release_volumes(*, paths: PodPaths) -> None:
    """Unmount whatever is mounted under the pod's dir (the tmpfs emptyDirs)."""
    if not paths.root.exists():
        return
    for point in _mounted_under(paths.root):
        _umount(point)


def _host_path(volume: types_pb2.Volume) -> Path:
    hp = volume.host_path
    path = Path(hp.path)
    if not path.is_absolute() or ".." in path.parts:
        raise ContainerConfigError(f"volume {volume.name!r}: hostPath.path {hp.path!r} must be an absolute "
                                   f"path without '..'")
    kind = hp.type
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True, mode=0o755)
    elif kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        path.touch(exist_ok=True)
    elif kind == "Directory" and not path.is_dir():
        raise ContainerConfigError(f"volume {volume.name!r}: hostPath type check failed: {hp.path} "
                                   f"is not a directory")
    elif kind == "File" and not path.is_file():
        raise ContainerConfigError(f"volume {volume.name!r}: hostPath type check failed: {hp.path} is not a file")
    elif kind not in ("", "Directory", "File", "DirectoryOrCreate", "FileOrCreate"):
        raise ContainerConfigError(f"volume {volume.name!r}: hostPath.type {kind!r} is not supported")
    return path


def container_mounts(*, pod: types_pb2.Pod, container: types_pb2.Container, paths: PodPaths) -> tuple[Mount, ...]:
    """The bind mounts of one container's volumeMounts."""
    volumes = {v.name: v for v in pod.spec.volumes}
    mounts = []
    for i, vm in enumerate(container.volume_mounts):
        where = f"container {container.name!r}: volumeMounts[{i}]"
        volume = volumes.get(vm.name)
        if volume is None:
            raise ContainerConfigError(f"{where}: no volume named {vm.name!r} in the pod")
        if not vm.mount_path.startswith("/"):
            raise ContainerConfigError(f"{where}.mountPath {vm.mount_path!r} must be absolute")
        if volume.HasField("host_path"):
            source = _host_path(volume)
        elif volume.HasField("empty_dir"):
            source = paths.volume_dir(volume.name)
            source.mkdir(parents=True, exist_ok=True)
        elif any(volume.HasField(s) for s in CONFIG_SOURCES):
            source = paths.volume_dir(volume.name)   # written by agent.configvolumes before any start
        else:
            raise ContainerConfigError(f"{where}: volume {vm.name!r}: its source is not implemented by Skiff "
                                       f"(emptyDir, hostPath, configMap, secret, downwardAPI and projected are)")
        if vm.sub_path:
            sub = Path(vm.sub_path)
            if sub.is_absolute() or ".." in sub.parts:
                raise ContainerConfigError(f"{where}.subPath {vm.sub_path!r} must be relative without '..'")
            base = source.resolve()
            target = source / sub
            if not target.exists() and volume.HasField("empty_dir"):
                target.mkdir(parents=True, exist_ok=True)
            resolved = target.resolve()
            if resolved != base and base not in resolved.parents:
                raise ContainerConfigError(f"{where}.subPath {vm.sub_path!r} leaves volume {vm.name!r}")
            source = resolved
        read_only = vm.read_only or any(volume.HasField(s) for s in CONFIG_SOURCES)
        mounts.append(Mount(target=vm.mount_path, source=str(source), kind="bind", read_only=read_only))
    return tuple(mounts)
