"""Starting a container, as the zygote does it: two processes, one recipe.

    zygote: enters the pod's namespaces, unshares mnt(+pid), forks init,
       │    restores its own namespaces; moves init into the cgroup while
       │    init builds the rootfs; reports init's pid and start time.
       └─fork─► init (B): PID 1 of the new pid namespace, in its own session
                │  (it never depends on the zygote or the agent: if they die
                │  it is reparented). Builds the rootfs, pivot_root, waits to
                │  be in its cgroup, unshares the cgroup namespace, applies
                │  the container's security to itself, then posix_spawns main
                │  and stays as the reaper: forwards signals, reaps orphans,
                │  writes the main process's exit status, exits with it.
                └─spawn─► main (C): the program, inheriting all that.

`start_in_zygote` then `_init` are the recipe; each step is a function below
or in rootfs.py / process.py. init never returns to the zygote's loop: it
ends in _exit. Failures go to the error pipe in words (the runtime raises
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
    """In the zygote itself: fork the container's init, return its pid.

    The zygote enters the pod's namespaces and unshares mnt (+pid) only
    around the fork, and restores its own right after (ctx), so no extra
    process is needed to hold them.
    """
    errfd = fds["err"]
    procs_fds: list[int] = []
    joined_r, joined_w = os.pipe2(os.O_CLOEXEC)
    pid = -1
    try:
        procs_fds = [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in req["cgroup_procs"]]
        try:
            # 1. The pod's namespaces; setns(pid) and unshare(pid) only act on
            #    children, so both precede the fork of init.
            namespaces.enter_all({k: v for k, v in req["pod_ns"].items() if v})
            # 2. New mount namespace (and pid, unless the pod shares one). The
            #    cgroup namespace comes later, in init, once it is in its cgroup.
            flags = sc.CLONE_NEWNS
            if not req["pod_ns"].get("pid"):
                flags |= sc.CLONE_NEWPID
            sc.unshare(flags)
            pid = os.fork()
            if pid == 0:
                try:
                    ctx.forget_zygote()
                    os.close(joined_w)
                    for fd in procs_fds:
                        os.close(fd)
                    _init(req, fds, joined_r)
                finally:
                    os._exit(1)
        finally:
            if pid != 0:
                ctx.restore_namespaces()
        mark("zygote: init forked")
        os.close(joined_r)
        joined_r = -1
        # 3. Move init into the container's cgroup while it builds the rootfs:
        #    on cgroup v1 the first migration waits for an RCU grace period
        #    (milliseconds), which this way is off the critical path. Init
        #    forks nothing before it hears "joined", so every process of the
        #    container is still counted from birth.
        for fd, path in zip(procs_fds, req["cgroup_procs"]):
            process.move_to_cgroup(pid=pid, procs_fd=fd, procs_file=path)
        os.write(joined_w, b"j")
        mark("zygote: init in its cgroup")
        return {"pid": pid, "start_time": proc_start_time(pid)}
    except Exception as e:  # noqa: BLE001 - reported; init (if any) sees EOF and gives up
        process.report(errfd, f"container setup: {e}")
        return {"error": f"container setup: {e}"}
    finally:
        for fd in (*procs_fds, joined_w, joined_r):
            if fd >= 0:
                os.close(fd)


def _init(req: dict, fds: dict[str, int], joined: int) -> None:
    """Process B: the container's PID 1."""
    errfd = fds["err"]
    shared_pid = bool(req["pod_ns"].get("pid"))
    try:
        os.setsid()  # out of the zygote's session and process group
        sc.set_process_name("skiff-init")
        if shared_pid:
            # Not PID 1 of its namespace: become the reaper of our own subtree.
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        # Opened now, readable after pivot_root: how a shared-pid init finds
        # what is left of its container to kill.
        cg_procs = os.open(req["cgroup_procs"][0], os.O_RDONLY | os.O_CLOEXEC)
        mark("B: forked")
        prepare_rootfs(req)
        mark("B: rootfs ready")
        # Wait for the zygote to have moved us into the container's cgroup, then make
        # that cgroup the root of our cgroup namespace; only then fork.
        if os.read(joined, 1) != b"j":
            raise RuntimeError("joining the container's cgroup failed")
        os.close(joined)
        sc.unshare(sc.CLONE_NEWCGROUP)
        mark("B: cgroup namespace")
        main = _spawn_main(req, fds)
        mark("B: main spawned")
    except process.ExecError as e:
        process.report(errfd, str(e))
        os._exit(127)
    except BaseException as e:  # noqa: BLE001
        process.report(errfd, f"container init: {e}")
        os._exit(1)
    _reap_until_main_exits(main=main, exit_fd=fds["exit"], shared_pid=shared_pid,
                           cg_procs=cg_procs, keep={fds["exit"]})


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


def _spawn_main(req: dict, fds: dict[str, int]) -> int:
    """Start the container's program as init's child; returns its pid.

    init first takes on the container's identity and limits itself (rlimits,
    uid/gid, capabilities, no_new_privs, seccomp): from here on it only
    waits, forwards signals and writes one file it already holds open, all
    of which the container's own rights allow. Then posix_spawn (vfork+exec,
    no copy of this interpreter's page tables) starts the program with those
    settings inherited: one process and one fork fewer per container, and an
    exec failure comes back right here as an exception.
    """
    for name in ("exit", "log", "stdin", "err"):
        os.set_inheritable(fds[name], False)   # received fds come without O_CLOEXEC
    env = process.build_env(req["env"], hostname=req.get("hostname"))
    process.enter_workdir(req["working_dir"])   # as root: it may have to be created
    # Nobody in the container may ptrace or read the memory of its init.
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    process.apply_security(process.security_from_dict(req["security"]))
    path = process.lookup(req["args"], env)
    return process.spawn(path=path, argv=req["args"], env=env,
                         stdio=(fds["stdin"], fds["log"], fds["log"]))


def _reap_until_main_exits(*, main: int, exit_fd: int, shared_pid: bool, cg_procs: int,
                           keep: set[int]) -> None:
    """The init's whole life after start: small, single-purpose, never raises."""
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(main, signum)
        except ProcessLookupError:
            pass
    for sig in _FORWARDED:
        signal.signal(sig, forward)
    # Drop everything but the exit file: the error pipe must reach EOF once
    # main has exec'd, and the log must not be held open by init.
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
            continue  # an orphan reparented to us: reaped, that is all
        mark("B: main exited")
        code = os.waitstatus_to_exitcode(status)
        record = {"exit_code": code if code >= 0 else 128 - code,
                  "signal": -code if code < 0 else None, "finished_at": time.time()}
        os.pwrite(exit_fd, json.dumps(record).encode(), 0)
        if shared_pid:
            _kill_rest(cg_procs)
        mark("B: exit status written")
        # As PID 1, exiting kills every other process of the pid namespace.
        os._exit(0)


def _kill_rest(cg_procs: int) -> None:
    """In a shared pid namespace, ending init does not end the container's
    other processes: kill what is left in its cgroup."""
    me = os.getpid()
    for _ in range(100):
        # The kernel lists pids as seen from our (the pod's) pid namespace;
        # 0 stands for one outside it.
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
