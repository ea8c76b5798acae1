"""The container's root filesystem: overlay, /proc, /dev, /sys, volumes, pivot_root.

Everything here runs inside the container's own, fresh mount namespace (the
container init calls these steps in order, see container_init.py), after
propagation was made private, so no mount made here is ever seen by the host
and all of them vanish with the namespace when the container ends.

Every mount target inside the rootfs is resolved with openat2(RESOLVE_IN_ROOT):
a symlink in the image (to `/`, to `..`, anywhere) is followed as if the
rootfs were `/`, so a target can never land outside it, and missing
components are created inside it the same way. The mount is then made on the
resolved fd through /proc/self/fd/N, as runc does.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import Iterator, Sequence

from agent.runtime.linux import syscalls as sc

_DEVICES = (  # name, major, minor (the host's device numbers; mknod on our tmpfs)
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7),
    ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
)
_DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
              ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
              ("ptmx", "pts/ptmx"))
MASKED_PATHS = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                "/proc/latency_stats", "/proc/timer_stats", "/proc/scsi", "/proc/acpi",
                "/sys/firmware")
READONLY_PATHS = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")

_O_PATH_DIR = os.O_PATH | os.O_CLOEXEC


def resolve_in_root(rootfd: int, path: str, *, create: str | None = None) -> int:
    """An O_PATH fd for `path` as seen with the rootfs as `/`.

    create: None (must exist), "dir" or "file" — missing components are made
    (directories, and the last one of the given kind) inside the rootfs.
    """
    rel = path.strip("/")
    if not rel:
        return os.dup(rootfd)
    try:
        return sc.openat2(rootfd, rel, os.O_PATH, sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS)
    except FileNotFoundError:
        if create is None:
            raise
    parts = [p for p in rel.split("/") if p and p != "."]
    dirfd = os.dup(rootfd)
    try:
        for i, name in enumerate(parts):
            # Always resolve the whole prefix from the rootfs: RESOLVE_IN_ROOT
            # relative to an inner directory would clamp `..` there instead.
            prefix = "/".join(parts[:i + 1])
            try:
                nxt = sc.openat2(rootfd, prefix, os.O_PATH, sc.RESOLVE_IN_ROOT)
            except FileNotFoundError:
                # dirfd is an O_PATH fd; mkdir/open need a real directory fd.
                real = os.open(f"/proc/self/fd/{dirfd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    if i == len(parts) - 1 and create == "file":
                        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                         | os.O_CLOEXEC, 0o644, dir_fd=real))
                    else:
                        os.mkdir(name, 0o755, dir_fd=real)
                finally:
                    os.close(real)
                nxt = sc.openat2(rootfd, prefix, os.O_PATH, sc.RESOLVE_IN_ROOT)
            os.close(dirfd)
            dirfd = nxt
        return dirfd
    except BaseException:
        os.close(dirfd)
        raise


@contextlib.contextmanager
def _at(rootfd: int, path: str, *, create: str | None = "dir") -> Iterator[str]:
    """A mount target for `path` inside the rootfs, as /proc/self/fd/N."""
    fd = resolve_in_root(rootfd, path, create=create)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _remount_ro(rootfd: int, path: str, flags: int = 0) -> None:
    # Re-resolve: an fd opened before the mount points below it, not at it.
    with _at(rootfd, path, create=None) as t:
        sc.mount(None, t, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | flags)


def make_mounts_private() -> None:
    """MS_REC|MS_PRIVATE on /: nothing mounted from here on propagates back to
    the host (and host mounts stop propagating in)."""
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)


def mount_overlay(*, lower_dirs: Sequence[str], upper: str, work: str, target: str) -> None:
    # ContainerConfig lists layers lowest first; overlay wants the top first.
    lower = ":".join(reversed([os.fspath(d) for d in lower_dirs]))
    if not lower:
        raise ValueError("container has no image layers (lower_dirs is empty)")
    sc.mount("overlay", target, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}")


def mount_proc(rootfd: int) -> None:
    with _at(rootfd, "/proc") as t:
        sc.mount("proc", t, "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def mount_dev(rootfd: int, *, console: str | None = None) -> None:
    """/dev as a small tmpfs with only the safe device nodes, devpts (its own
    instance), shm and mqueue."""
    with _at(rootfd, "/dev") as t:
        sc.mount("tmpfs", t, "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME, "mode=755,size=65536k")
    devfd = resolve_in_root(rootfd, "/dev")
    dev = os.open(f"/proc/self/fd/{devfd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.close(devfd)
    try:
        for name, major, minor in _DEVICES:
            os.mknod(name, 0o666 | stat.S_IFCHR, os.makedev(major, minor), dir_fd=dev)
            os.chmod(name, 0o666, dir_fd=dev)  # mknod's mode is cut by the umask
        for name, dest in _DEV_LINKS:
            os.symlink(dest, name, dir_fd=dev)
        for name in ("pts", "shm", "mqueue"):
            os.mkdir(name, 0o755, dir_fd=dev)
        # /dev/console: the tty's pty when there is one; otherwise the null
        # device (never the host's console).
        os.mknod("console", 0o620 | stat.S_IFCHR, os.makedev(1, 3), dir_fd=dev)
    finally:
        os.close(dev)
    if console:
        with _at(rootfd, "/dev/console", create=None) as t:
            sc.mount(console, t, None, sc.MS_BIND)
    with _at(rootfd, "/dev/pts", create=None) as t:
        sc.mount("devpts", t, "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
                 "newinstance,ptmxmode=0666,mode=0620,gid=5")
    with _at(rootfd, "/dev/shm", create=None) as t:
        sc.mount("shm", t, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=1777,size=65536k")
    with _at(rootfd, "/dev/mqueue", create=None) as t:
        sc.mount("mqueue", t, "mqueue", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def mount_sys(rootfd: int, *, own_netns: bool) -> None:
    """/sys read-only. A fresh sysfs shows the container's own network
    devices, but the kernel allows it only in a network namespace we created;
    with the host's network a read-only bind of the host's /sys stands in."""
    flags = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    with _at(rootfd, "/sys") as t:
        if own_netns:
            sc.mount("sysfs", t, "sysfs", flags)
            return
        sc.mount("/sys", t, None, sc.MS_BIND | sc.MS_REC)
    _remount_ro(rootfd, "/sys", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def mount_volumes(rootfd: int, mounts: Sequence[dict]) -> None:
    """The pod's volumes (hostPath/emptyDir as binds, medium Memory as tmpfs)."""
    for m in mounts:
        target, kind = m["target"], m.get("kind", "bind")
        if kind == "tmpfs":
            data = ",".join(m.get("options") or ()) or "mode=1777"
            with _at(rootfd, target) as t:
                sc.mount("tmpfs", t, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, data)
        elif kind == "bind":
            source = m["source"]
            st = os.stat(source)  # the source is a host path: the user's choice
            with _at(rootfd, target, create="dir" if stat.S_ISDIR(st.st_mode) else "file") as t:
                sc.mount(source, t, None, sc.MS_BIND | sc.MS_REC)
        else:
            raise ValueError(f"mount {target}: unknown kind {kind!r} (bind or tmpfs)")
        if m.get("read_only"):
            _remount_ro(rootfd, target)


def mount_pod_files(rootfd: int, pod_dir: str) -> None:
    """The pod's /etc/hosts, /etc/hostname and /etc/resolv.conf, shared by its
    containers (one copy per pod, so an update reaches all of them)."""
    for name in ("hosts", "hostname", "resolv.conf"):
        src = os.path.join(pod_dir, name)
        if os.path.exists(src):
            with _at(rootfd, f"/etc/{name}", create="file") as t:
                sc.mount(src, t, None, sc.MS_BIND)


def mask_paths(rootfd: int) -> None:
    """Hide kernel files a container has no business reading: files get
    /dev/null bound over them, directories an empty read-only tmpfs."""
    for path in MASKED_PATHS:
        try:
            fd = resolve_in_root(rootfd, path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            t = f"/proc/self/fd/{fd}"
            if stat.S_ISDIR(os.stat(t).st_mode):
                sc.mount("tmpfs", t, "tmpfs", sc.MS_RDONLY, "size=0k,mode=555")
            else:
                sc.mount("/dev/null", t, None, sc.MS_BIND)
        finally:
            os.close(fd)
    for path in READONLY_PATHS:
        try:
            with _at(rootfd, path, create=None) as t:
                sc.mount(t, t, None, sc.MS_BIND | sc.MS_REC)
        except (FileNotFoundError, NotADirectoryError):
            continue
        _remount_ro(rootfd, path, sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def pivot_root(rootfs: str) -> None:
    """Make rootfs the root, then drop the old root entirely.

    pivot_root(".", ".") stacks the old root on top of the new one, so one
    lazy umount removes it without needing a put_old directory in the image
    (runc's trick). MNT_DETACH because host mounts may be busy.
    """
    os.chdir(rootfs)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def make_root_readonly() -> None:
    """readOnlyRootFilesystem: the overlay root becomes read-only (after
    pivot_root: the volumes mounted on it stay as they are)."""
    sc.mount(None, "/", None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)


def ensure_workdir(path: str) -> None:
    """Like runc, create a missing working directory (we are already inside
    the container's root, so this cannot touch the host)."""
    try:
        os.makedirs(path, 0o755, exist_ok=True)
    except OSError as e:
        if e.errno not in (errno.EROFS, errno.EEXIST):
            raise


def mount_cgroupfs(hierarchies: Sequence[dict]) -> None:
    """/sys/fs/cgroup, read-only, as the container's cgroup namespace shows it
    (its own cgroup is the root): cgroup2 alone on a v2 host; on a v1 or
    hybrid host a tmpfs holding one mount per hierarchy the host has, under
    the host's directory names. Called after pivot_root and the cgroup
    namespace's unshare."""
    ro = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    target = "/sys/fs/cgroup"
    if not hierarchies or not os.path.isdir(target):
        return
    if len(hierarchies) == 1 and not hierarchies[0]["dir"]:
        sc.mount("cgroup2", target, "cgroup2", ro)
        return
    sc.mount("tmpfs", target, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=755")
    for h in hierarchies:
        path = os.path.join(target, h["dir"])
        os.mkdir(path, 0o555)
        if h["fstype"] == "cgroup2":
            sc.mount("cgroup2", path, "cgroup2", ro)
        else:
            sc.mount("cgroup", path, "cgroup", ro, h["options"])
    sc.mount(None, target, None, sc.MS_REMOUNT | ro)


def host_cgroup_hierarchies(mountinfo: str = "/proc/self/mountinfo") -> list[dict]:
    """The cgroup hierarchies mounted at or under /sys/fs/cgroup on the host:
    [{"dir": "memory", "fstype": "cgroup", "options": "memory"}, ...], or
    [{"dir": "", "fstype": "cgroup2"}] on a v2-only host."""
    out = []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            point, fstype, super_opts = fields[4], fields[sep + 1], fields[sep + 3]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            if point == "/sys/fs/cgroup":
                out.append({"dir": "", "fstype": fstype, "options": ""})
            elif point.startswith("/sys/fs/cgroup/") and "/" not in point[len("/sys/fs/cgroup/"):]:
                opts = [o for o in super_opts.split(",") if o not in ("rw", "ro")]
                out.append({"dir": point[len("/sys/fs/cgroup/"):], "fstype": fstype, "options": ",".join(opts)})
    return out
