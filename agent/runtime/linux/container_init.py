"""Starting a container, as the zygote does it: three processes, one recipe.

    zygote: enters the pod's namespaces, unshares mnt, forks the shim,
       │    restores its own namespaces; reports the shim's pid and start time.
       └─fork─► shim (B): in its own session, outside the container's pid
                │  namespace (it never depends on the zygote or the agent: if
                │  they die it is reparented). Unshares pid (unless the pod
                │  shares one), forks the program's process, moves it into the
                │  container's cgroup while it builds the rootfs, then only
                │  forwards signals, waits for it and writes its exit status.
                └─fork─► program (C): PID 1 of the new pid namespace, as in
                         Kubernetes, runc and Docker (`echo $$` prints 1).
                         Builds the rootfs (so /proc shows its own pid ns),
                         pivot_root, waits to be in its cgroup, unshares the
                         cgroup namespace and mounts /sys/fs/cgroup (its own
                         cgroup as the root), applies the container's
                         security, and execs the program.

Why a shim and not our own PID 1: the program must be PID 1 (what a
Kubernetes user sees and signals), and only a parent outside the pid
namespace can collect its exit status after the agent is gone. Orphans are
reaped by PID 1 — the program itself, or, with shareProcessNamespace, the
pod's init (sandbox_init.py), as Kubernetes' pause container does.

C is bound to B's life (PR_SET_PDEATHSIG): killing the shim kills the
container. Failures go to the error pipe in words (the runtime raises
StartError).
"""
from __future__ import annotations

import json
import os
import signal
import time

from agent.runtime.linux import namespaces, process, rootfs
from agent.runtime.linux import syscalls as sc
from agent.runtime.linux.state import proc_start_time
from agent.runtime.linux import trace
from agent.runtime.linux.trace import mark

_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
              signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT, signal.SIGALRM)


def start_in_zygote(req: dict, fds: dict[str, int], ctx) -> dict:
    """In the zygote itself: fork the container's shim, return its pid.

    The zygote enters the pod's namespaces and unshares mnt only around the
    fork, and restores its own right after (ctx), so no extra process is
    needed to hold them.
    """
    errfd = fds["err"]
    pid = -1
    try:
        try:
            # 1. The pod's namespaces; setns(pid) only acts on children, so the
            #    shim stays outside and the program is born in the pod's pid ns.
            namespaces.enter_all({k: v for k, v in req["pod_ns"].items() if v})
            # 2. A new mount namespace, shared by the shim and the program; the
            #    pid namespace is the shim's to make (the program must be its PID 1).
            sc.unshare(sc.CLONE_NEWNS)
            pid = os.fork()
            if pid == 0:
                try:
                    ctx.forget_zygote()
                    _shim(req, fds)
                finally:
                    os._exit(1)
        finally:
            if pid != 0:
                ctx.restore_namespaces()
        mark("zygote: shim forked")
        return {"pid": pid, "start_time": proc_start_time(pid)}
    except Exception as e:  # noqa: BLE001 - reported
        process.report(errfd, f"container setup: {e}")
        return {"error": f"container setup: {e}"}


def _shim(req: dict, fds: dict[str, int]) -> None:
    """Process B: the program's parent, outside its pid namespace. Never returns."""
    errfd = fds["err"]
    shared_pid = bool(req["pod_ns"].get("pid"))
    main = -1
    try:
        os.setsid()  # out of the zygote's session and process group
        sc.set_process_name("skiff-shim")
        procs_fds = [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in req["cgroup_procs"]]
        # Opened now, readable after pivot_root: how a shared-pid shim finds
        # what is left of its container to kill.
        cg_procs = os.open(req["cgroup_procs"][0], os.O_RDONLY | os.O_CLOEXEC)
        if not shared_pid:
            sc.unshare(sc.CLONE_NEWPID)
        joined_r, joined_w = os.pipe2(os.O_CLOEXEC)
        main = os.fork()
        if main == 0:
            try:
                os.close(joined_w)
                _program(req, fds, joined_r)
            finally:
                os._exit(1)
        os.close(joined_r)
        mark("B: program forked")
        # Move the program into the container's cgroup while it builds the
        # rootfs: on cgroup v1 the first migration waits for an RCU grace
        # period (milliseconds), which this way is off the critical path. It
        # forks nothing before it hears "joined", so every process of the
        # container is counted from birth.
        for fd, path in zip(procs_fds, req["cgroup_procs"]):
            process.move_to_cgroup(pid=main, procs_fd=fd, procs_file=path)
            os.close(fd)
        os.write(joined_w, b"j")
        os.close(joined_w)
        mark("B: program in its cgroup")
    except BaseException as e:  # noqa: BLE001
        process.report(errfd, f"container init: {e}")
        if main > 0:
            os.kill(main, signal.SIGKILL)
        os._exit(1)
    _wait_for_program(main=main, exit_fd=fds["exit"], shared_pid=shared_pid,
                      cg_procs=cg_procs, keep={fds["exit"]})


def _program(req: dict, fds: dict[str, int], joined: int) -> None:
    """Process C: becomes the container's program. Never returns."""
    errfd = fds["err"]
    try:
        # Bound to the shim: killing it (remove, or a runtime that lost track)
        # must not leave the container running unwatched.
        # (getppid() cannot confirm the shim is still there: from inside the
        # new pid namespace the parent shows as 0. The shim waits for us, so
        # it cannot be gone before this line unless it was killed.)
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        mark("C: forked")
        prepare_rootfs(req)
        mark("C: rootfs ready")
        # Wait until the shim has moved us into the container's cgroup, then
        # make that cgroup the root of our cgroup namespace, and only then
        # mount /sys/fs/cgroup, so it shows the container's own cgroup.
        if os.read(joined, 1) != b"j":
            raise RuntimeError("joining the container's cgroup failed")
        os.close(joined)
        sc.unshare(sc.CLONE_NEWCGROUP)
        rootfs.mount_cgroupfs(req.get("cgroup_mounts") or [])
        mark("C: cgroup namespace")
        env = process.build_env(req["env"], hostname=req.get("hostname"))
        process.enter_workdir(req["working_dir"])   # as root: it may have to be created
        os.dup2(fds["stdin"], 0)
        os.dup2(fds["log"], 1)
        os.dup2(fds["log"], 2)
    except BaseException as e:  # noqa: BLE001
        process.report(errfd, f"container init: {e}")
        os._exit(1)
    process.exec_process(argv=req["args"], env=env, working_dir=req["working_dir"],
                         security=process.security_from_dict(req["security"]), errfd=errfd)
    os._exit(127)


def prepare_rootfs(req: dict) -> None:
    """The rootfs recipe, in order; each ordering constraint said where it applies."""
    rootfs_dir = req["rootfs"]
    # Private first: nothing below may propagate to the host's mount table.
    rootfs.make_mounts_private()
    mark("B: private")
    rootfs.mount_overlay(lower_dirs=req["lower_dirs"], upper=req["upper"], work=req["work"],
                         target=rootfs_dir)
    mark("B: overlay")
    rootfd = os.open(rootfs_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # the overlay's root
    try:
        # /proc after the pid namespace exists (it shows the mounter's pid ns).
        rootfs.mount_proc(rootfd)
        mark("B: proc")
        rootfs.mount_dev(rootfd)
        mark("B: dev")
        # sysfs shows the network namespace we are in: we entered the pod's.
        rootfs.mount_sys(rootfd, own_netns=bool(req["pod_ns"].get("net")))
        rootfs.mount_volumes(rootfd, req["mounts"])
        rootfs.mount_pod_files(rootfd, req["pod_dir"])
        # Masks after everything under /proc and /sys is mounted, so nothing
        # mounted later can uncover a masked path.
        mark("B: sys, volumes, pod files")
        rootfs.mask_paths(rootfd)
        mark("B: masked")
    finally:
        os.close(rootfd)
    rootfs.pivot_root(rootfs_dir)
    mark("B: pivoted")
    # The hostname is the pod's: set once in its uts namespace (sandbox), shared here.
    if req["read_only_rootfs"]:
        # After pivot_root, and after the volumes: only the root mount turns ro.
        rootfs.make_root_readonly()


def _wait_for_program(*, main: int, exit_fd: int, shared_pid: bool, cg_procs: int,
                      keep: set[int]) -> None:
    """The shim's whole life after start: small, single-purpose, never raises."""
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(main, signum)
        except ProcessLookupError:
            pass
    for sig in _FORWARDED:
        signal.signal(sig, forward)
    # Drop everything but the exit file: the error pipe must reach EOF once
    # the program has exec'd, and the log must not be held open by the shim.
    keep = keep | {cg_procs, trace.fd()}
    for fd in range(3, 1024):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    nul = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(nul, fd)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if pid != main:
            continue
        mark("B: program exited")
        code = os.waitstatus_to_exitcode(status)
        record = {"exit_code": code if code >= 0 else 128 - code,
                  "signal": -code if code < 0 else None, "finished_at": time.time()}
        os.pwrite(exit_fd, json.dumps(record).encode(), 0)
        if shared_pid:
            _kill_rest(cg_procs)
        mark("B: exit status written")
        # The program was PID 1 of its pid namespace: its end killed the rest.
        os._exit(0)


def _kill_rest(cg_procs: int) -> None:
    """In a shared pid namespace, the program's end does not end the
    container's other processes: kill what is left in its cgroup."""
    me = os.getpid()
    for _ in range(100):
        # The shim sits in the host's pid namespace: these are host pids.
        pids = [int(p) for p in os.pread(cg_procs, 1 << 20, 0).split()]
        others = [p for p in pids if p not in (0, me)]
        if not others:
            return
        for p in others:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)
