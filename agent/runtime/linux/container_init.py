"""Starting a container, as the zygote does it: one process, one recipe.

    zygote: hands the start to its spare — a process forked ahead of time,
       │    already PID 1 of a pid namespace of its own, which then enters
       │    the pod's namespaces and unshares mnt itself — or (first start,
       │    shareProcessNamespace pods) enters the pod's namespaces, unshares
       │    mnt and pid, forks it and restores its own namespaces. Watches
       │    the process and reports its pid.
       └─────► program (C): PID 1 of the new pid namespace, as in
                Kubernetes, runc and Docker (`echo $$` prints 1). Builds the
                rootfs (so /proc shows its own pid ns), pivot_root, waits
                until the agent has moved it into the container's cgroup
                (the "joined" pipe), unshares the cgroup namespace and mounts
                /sys/fs/cgroup (its own cgroup as the root), applies the
                container's security, and execs the program.

The zygote stays the program's parent for its whole life and records its
exit status (zygote.py); no process of ours runs beside a container. Orphans
inside the container are reaped by PID 1 — the program itself, or, with
shareProcessNamespace, the pod's init (sandbox_init.py), as Kubernetes'
pause container does. Failures go to the error pipe in words (the runtime
raises StartError).
"""
from __future__ import annotations

import json
import os
import signal
import socket

from agent.runtime.linux import namespaces, process, rootfs
from agent.runtime.linux import syscalls as sc
from agent.runtime.linux.state import proc_start_time
from agent.runtime.linux.trace import mark


def start_in_zygote(req: dict, fds: dict[str, int], ctx) -> dict:
    """In the zygote itself: hand the container to the spare (or fork its
    program's process), watch it, return its pid."""
    errfd = fds["err"]
    shared_pid = bool(req["pod_ns"].get("pid"))
    try:
        pid = _hand_to_spare(req, fds, ctx) if not shared_pid else None
        if pid is None:
            pid = _fork_program(req, fds, ctx)
        # In a shared pid namespace the program's end does not end the rest
        # of the container: the zygote kills what is left in its cgroup.
        ctx.watch(pid, exit_path=req["exit_path"],
                  kill_cgroup=req["cgroup_procs"][0] if shared_pid else None)
        mark("zygote: program forked")
        reply = {"pid": pid, "start_time": proc_start_time(pid)}
    except Exception as e:  # noqa: BLE001 - reported
        process.report(errfd, f"container setup: {e}")
        reply = {"error": f"container setup: {e}"}
    # The next start's process, forked now (while this one builds its rootfs)
    # and named in the reply, so the agent can move it into the next
    # container's cgroup early.
    ctx.keep_spare()
    reply["spare"] = ctx.spare_identity()
    return reply


def _fork_program(req: dict, fds: dict[str, int], ctx) -> int:
    """Fork the program's process. The zygote enters the pod's namespaces
    and unshares mnt and pid only around the fork, and restores its own
    right after (ctx)."""
    shared_pid = bool(req["pod_ns"].get("pid"))
    pid = -1
    try:
        # 1. The pod's namespaces; setns(pid) only acts on children, so the
        #    zygote stays outside and the program is born in the pod's.
        namespaces.enter_all({k: v for k, v in req["pod_ns"].items() if v})
        # 2. New mount and pid namespaces: unshare(pid) too only acts on
        #    children, so the program becomes PID 1 of the new one.
        sc.unshare(sc.CLONE_NEWNS | (0 if shared_pid else sc.CLONE_NEWPID))
        pid = os.fork()
        if pid == 0:
            try:
                ctx.forget_zygote()
                _program(req, fds)
            finally:
                os._exit(1)
    finally:
        if pid != 0:
            ctx.restore_namespaces()
    return pid


# -- the spare: a program process forked ahead of time ----------------------
#
# Forking is most of the zygote's share of a start (its page tables are
# copied). So after each start, once the agent has its answer, the zygote
# forks the next container's process ahead of time: already PID 1 of a pid
# namespace of its own, waiting on a socket. A start hands it the request and
# fds; it enters the pod's net/ipc/uts namespaces and unshares mnt itself,
# then goes on exactly as a freshly forked one. Only shareProcessNamespace
# pods (whose pid namespace exists already) are forked on demand.

def fork_spare(ctx) -> tuple[int, socket.socket]:
    """In the zygote: fork a spare in a new pid namespace; (pid, its socket)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    pid = -1
    try:
        sc.unshare(sc.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            try:
                ctx.forget_zygote()
                ours.close()
                _spare(theirs)
            finally:
                os._exit(1)
    finally:
        if pid != 0:
            ctx.restore_namespaces()
            theirs.close()
    if pid < 0:
        ours.close()
    return pid, ours


def _hand_to_spare(req: dict, fds: dict[str, int], ctx) -> int | None:
    """Give the start to the spare; its pid, or None if there is none (or it
    died waiting)."""
    spare, ctx.spare = ctx.spare, None
    if spare is None:
        return None
    pid, sock = spare
    try:
        socket.send_fds(sock, [json.dumps(req).encode()], list(fds.values()))
        return pid
    except OSError:
        return None   # gone: the zygote reaps it like any child
    finally:
        sock.close()


def _spare(sock: socket.socket) -> None:
    """A spare's life: wait, then become the container's program. Never returns."""
    sc.set_process_name("skiff-spare")
    # Forked at any moment: what the zygote held then (another start's
    # pipes, above all) is not ours to keep open.
    process.close_fds_except({sock.fileno()})
    try:
        msg, received, _, _ = socket.recv_fds(sock, 1 << 20, 16)
    except OSError:
        os._exit(0)
    if not msg:
        os._exit(0)   # the zygote let us go
    sock.close()
    req = json.loads(msg)
    fds = dict(zip(req["fds"], received))
    mark("C: spare taken")
    try:
        namespaces.enter_all({k: v for k, v in req["pod_ns"].items() if v})
        sc.unshare(sc.CLONE_NEWNS)
    except BaseException as e:  # noqa: BLE001
        process.report(fds["err"], f"container init: {e}")
        os._exit(1)
    _program(req, fds)


def _program(req: dict, fds: dict[str, int]) -> None:
    """Process C: becomes the container's program. Never returns."""
    errfd = fds["err"]
    try:
        os.setsid()  # out of the zygote's session: its own process group
        mark("C: forked")
        prepare_rootfs(req)
        mark("C: rootfs ready")
        # Wait until the agent has moved us into the container's cgroup (on
        # cgroup v1 the migration waits for an RCU grace period, so it runs
        # while we build the rootfs), then make that cgroup the root of our
        # cgroup namespace, and only then mount /sys/fs/cgroup, so it shows
        # the container's own cgroup. Nothing is forked before: every
        # process of the container is counted from birth.
        if os.read(fds["joined"], 1) != b"j":
            raise RuntimeError("joining the container's cgroup failed")
        os.close(fds["joined"])
        sc.unshare(sc.CLONE_NEWCGROUP)
        rootfs.mount_cgroupfs(req.get("cgroup_mounts") or [])
        mark("C: cgroup namespace")
        env = process.build_env(req["env"], hostname=req.get("hostname"))
        if req.get("oom_score_adj") is not None:
            # Before the capabilities go (lowering it needs CAP_SYS_RESOURCE); children inherit it.
            # A hint, not a requirement: a node without CAP_SYS_RESOURCE (itself in a container)
            # cannot lower it, and the container runs with the value it inherited.
            try:
                with open("/proc/self/oom_score_adj", "w") as f:
                    f.write(str(req["oom_score_adj"]))
            except PermissionError:
                pass
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
    mark("C: private")
    rootfs.mount_overlay(lower_dirs=req["lower_dirs"], upper=req["upper"], work=req["work"],
                         target=rootfs_dir)
    mark("C: overlay")
    rootfd = os.open(rootfs_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # the overlay's root
    try:
        # /proc after the pid namespace exists (it shows the mounter's pid ns).
        rootfs.mount_proc(rootfd)
        mark("C: proc")
        rootfs.mount_dev(rootfd)
        mark("C: dev")
        # sysfs shows the network namespace we are in: we entered the pod's.
        rootfs.mount_sys(rootfd, own_netns=bool(req["pod_ns"].get("net")))
        rootfs.mount_volumes(rootfd, req["mounts"])
        rootfs.mount_pod_files(rootfd, req["pod_dir"])
        # Masks after everything under /proc and /sys is mounted, so nothing
        # mounted later can uncover a masked path.
        mark("C: sys, volumes, pod files")
        rootfs.mask_paths(rootfd)
        mark("C: masked")
    finally:
        os.close(rootfd)
    rootfs.pivot_root(rootfs_dir)
    mark("C: pivoted")
    # The hostname is the pod's: set once in its uts namespace (sandbox), shared here.
    if req["read_only_rootfs"]:
        # After pivot_root, and after the volumes: only the root mount turns ro.
        rootfs.make_root_readonly()


def kill_rest(cgroup_procs: str) -> None:
    """SIGKILL whatever is left in a container's cgroup (one pass, never
    blocks: the runtime's remove destroys the cgroup and kills stragglers).
    Runs in the zygote, in the host's pid namespace: these are host pids."""
    try:
        with open(cgroup_procs) as f:
            pids = [int(p) for p in f.read().split()]
    except OSError:
        return
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
