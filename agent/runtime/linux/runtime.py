"""LinuxRuntime: the Runtime protocol on the kernel, as the agent uses it.

This is the asyncio side. It prepares what needs no fork (directories, the
cgroup, the log file, pipes), asks the zygote for the container's process
(see zygote.py), moves it into its cgroup, and afterwards learns everything
from files and fds: the error pipe says whether exec succeeded, a pidfd says
when the program has exited, and the exit file the zygote wrote says how.
Everything it knows is on disk under run_dir (state.py), so a new
LinuxRuntime after an agent crash carries on where the old one stopped.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import AsyncIterator, Sequence

from agent.runtime.interface import (ContainerConfig, ContainerStats, ContainerStatus, ExecOutput,
                                     ExecResult, Resources, Sandbox, SandboxConfig, StartError, State,
                                     TerminalSize)
from agent.runtime.linux import aio, cgroups, exec_io, process, rootfs, sandboxes
from agent.runtime.linux.fsusage import disk_usage
from agent.runtime.linux import syscalls as sc
from agent.runtime.linux.trace import mark
from agent.runtime.linux.state import (RunDirs, is_alive, proc_state, process_name, read_json, to_json_dict,
                                      write_json)
from agent.runtime.linux.zygote import ZYGOTE_NAME, RequestTooLarge, Zygote

STATUS_UNKNOWN = ("the container's exit status was lost: the runtime's monitor (skiff-zygote) "
                  "ended before the container did")


def _shortened(message: str, limit: int = 1000) -> str:
    """A start error as a person reads it: one that echoes a 1 MiB argument
    or path is cut (it ends in the pod's status and in every describe)."""
    return message if len(message) <= limit else f"{message[:limit]}... ({len(message) - limit} more characters)"


def _ts(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, tz=timezone.utc)


class LinuxRuntime:
    """Containers in namespaces + cgroups + overlay, forked by a zygote."""

    def __init__(self, *, run_dir: Path, cgroup_parent: str = "skiff",
                 default_pids_limit: int = 4096, zygote: Zygote | None = None) -> None:
        self.dirs = RunDirs(Path(run_dir))
        self.cgroup_parent = cgroup_parent
        self.default_pids_limit = default_pids_limit
        # What each container mounts at /sys/fs/cgroup: the host's hierarchies.
        self._cgroup_hierarchies = rootfs.host_cgroup_hierarchies()
        for sub in ("containers", "pods", "netns", "ns"):
            (self.dirs.run_dir / sub).mkdir(parents=True, exist_ok=True)
        self._own_zygote = zygote is None
        self.zygote = zygote if zygote is not None else Zygote.attach_or_spawn(self.dirs.run_dir)
        self.sandboxes = sandboxes.Sandboxes(dirs=self.dirs, zygote=self.zygote,
                                             cgroup_parent=cgroup_parent,
                                             default_pids_limit=default_pids_limit)

    def close(self) -> None:
        """Detach from our zygote. Containers keep running, watched by it; it
        exits once none is left."""
        if self._own_zygote:
            self.zygote.close()

    # -- cgroups ------------------------------------------------------------

    def _cgroup(self, pod_id: str, cid: str) -> cgroups.CgroupManager:
        return cgroups.new_manager(parent=self.cgroup_parent, name_path=f"pod-{pod_id}/{cid}")

    # -- sandboxes ----------------------------------------------------------

    async def create_sandbox(self, config: SandboxConfig) -> Sandbox:
        return await self.sandboxes.create(config)

    async def remove_sandbox(self, pod_id: str) -> None:
        for cid in self.dirs.container_ids():
            cfg = read_json(self.dirs.container(cid) / "config.json")
            if cfg is None or cfg["pod_id"] == pod_id:
                await self.remove(cid)
        self.sandboxes.remove(pod_id)

    async def list_sandboxes(self) -> Sequence[Sandbox]:
        return self.sandboxes.list()

    # -- containers ---------------------------------------------------------

    async def start(self, config: ContainerConfig) -> ContainerStatus:
        mark("start: called")
        sandbox = self.sandboxes.get(config.pod_id)
        if sandbox is None:
            raise StartError(f"pod {config.pod_id}: no sandbox (create_sandbox first)")
        cdir = self.dirs.container(config.id)
        try:
            cdir.mkdir()
        except FileExistsError:
            raise StartError(f"container {config.id} already exists") from None
        (cdir / "rootfs").mkdir()
        upper, work = self._writable_layer(config, cdir)
        record = to_json_dict(config)
        record["work_dir"] = str(work)
        record["created_at"] = time.time()
        write_json(cdir / "config.json", record)
        cg = self._cgroup(config.pod_id, config.id)
        procs_files = [str(p / "cgroup.procs") for p in dict.fromkeys(cg.paths().values())]
        pod_ns = self.sandboxes.namespace_paths(sandbox.pod_id)
        req = {
            "op": "start", "id": config.id, "rootfs": str(cdir / "rootfs"),
            "lower_dirs": [str(d) for d in config.lower_dirs], "upper": str(upper), "work": str(work),
            "pod_ns": pod_ns, "cgroup_procs": procs_files, "exit_path": str(cdir / "exit"),
            "pod_dir": str(sandbox.state_dir), "hostname": self.sandboxes.hostname(config.pod_id),
            "mounts": record["mounts"], "security": record["security"],
            "read_only_rootfs": config.security.read_only_rootfs,
            "args": list(config.args), "env": [list(kv) for kv in config.env],
            "working_dir": config.working_dir or "/",
            "cgroup_mounts": self._cgroup_hierarchies,
            "oom_score_adj": config.oom_score_adj,
        }
        # The cgroup is made in a thread while the zygote hands the start to
        # its spare process, which the thread moves into the cgroup at once
        # (on cgroup v1 a move waits for an RCU grace period: milliseconds,
        # spent while the program builds its rootfs). The program is told on
        # the joined pipe (EOF instead: something failed, it gives up).
        try:   # before anything is handed over that a refusal would have to undo
            self.zygote.encode(req, ["err", "joined", "log", "stdin"])
        except RequestTooLarge as e:
            (cdir / "start_error").write_text(str(e))
            raise StartError(str(e)) from None
        spare = None if pod_ns.get("pid") else self.zygote.take_spare()
        cgroup_ready = asyncio.ensure_future(asyncio.to_thread(
            _make_cgroup_with, cg, config.resources, procs_files, spare=spare, zygote=self.zygote.pid))
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        joined_r, joined_w = os.pipe2(os.O_CLOEXEC)
        fds = {"err": err_w, "joined": joined_r}
        failure = ""
        reply: dict = {}
        try:
            try:
                fds["log"] = os.open(config.log_path or os.devnull,
                                     os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
                # stdin: true gets a FIFO in its dir, open read-write so the program never sees EOF
                # and an attach (stdin_fifo) can write to it any time, across agent restarts.
                fds["stdin"] = os.open(_stdin_fifo(cdir) if config.stdin else os.devnull,
                                       (os.O_RDWR if config.stdin else os.O_RDONLY) | os.O_CLOEXEC)
                started_at = time.time()
                reply = await self.zygote.request(req, fds)
                mark("start: zygote replied")
            finally:
                for fd in fds.values():
                    os.close(fd)
            if "pid" in reply:
                write_json(cdir / "state.json", {"pid": reply["pid"], "start_time": reply["start_time"],
                                                 "started_at": started_at})
                try:
                    if await cgroup_ready != reply["pid"]:   # not the spare it moved
                        await asyncio.to_thread(process.join_cgroup, procs_files, pid=reply["pid"])
                    os.write(joined_w, b"j")
                    mark("start: program in its cgroup")
                except (ProcessLookupError, BrokenPipeError):
                    pass   # it died setting up, and says why on the error pipe
                except OSError as e:
                    failure = f"container cgroup: {e}"
            # EOF on the error pipe: every writer is gone, i.e. the program
            # exec'd (close-on-exec) or died trying and said why.
            os.close(joined_w)
            joined_w = -1
            message = (await aio.read_all(err_r)).decode(errors="replace").strip()
        finally:
            if not cgroup_ready.done():
                await asyncio.wait([cgroup_ready])
            for fd in (joined_w, err_r):
                if fd >= 0:
                    os.close(fd)
        mark("start: error pipe at EOF")
        message = _shortened(failure or message or reply.get("error", ""))
        if message:
            (cdir / "start_error").write_text(message)
            raise StartError(message)
        return await self.status(config.id)

    def _writable_layer(self, config: ContainerConfig, cdir: Path) -> tuple[Path, Path]:
        if config.upper_dir is None:
            upper, work = cdir / "upper", cdir / "work"
            upper.mkdir()
            work.mkdir()
            return upper, work
        upper = Path(config.upper_dir)
        upper.mkdir(parents=True, exist_ok=True)
        # overlay needs upper and work on one filesystem; ours if it is.
        work = cdir / "work"
        if os.stat(upper).st_dev != os.stat(cdir).st_dev:
            work = upper.parent / f".{upper.name}.skiff-work"
        work.mkdir(exist_ok=True)
        return upper, work

    async def status(self, container_id: str) -> ContainerStatus:
        cdir = self.dirs.container(container_id)
        cfg = read_json(cdir / "config.json")
        if cfg is None:
            raise KeyError(f"container {container_id}: not found")
        base = dict(id=container_id, pod_id=cfg["pod_id"], name=cfg["name"],
                    image=cfg["image"], image_id=cfg["image_id"])
        st = read_json(cdir / "state.json")
        start_error = cdir / "start_error"
        if start_error.exists():
            return ContainerStatus(**base, state=State.EXITED, exit_code=128, reason="StartError",
                                   message=start_error.read_text(),
                                   started_at=_ts(st and st["started_at"]),
                                   finished_at=_ts(st and st["started_at"]))
        if st is None:
            return ContainerStatus(**base, state=State.CREATED)
        live = self._liveness(st)
        ex = None if live == "running" else read_json(cdir / "exit")
        if ex is None and live != "gone":
            return ContainerStatus(**base, state=State.RUNNING, pid=st["pid"],
                                   started_at=_ts(st["started_at"]))
        if ex is None:
            # Gone with nothing recorded: the zygote watching it ended first.
            return ContainerStatus(**base, state=State.EXITED, pid=st["pid"], exit_code=137,
                                   reason="ContainerStatusUnknown", message=STATUS_UNKNOWN,
                                   started_at=_ts(st["started_at"]), finished_at=_ts(st["started_at"]))
        oom = False
        try:
            oom = self._cgroup(cfg["pod_id"], container_id).oom_killed()
        except OSError:
            pass
        if oom:
            reason = "OOMKilled"
        else:
            reason = "Completed" if ex["exit_code"] == 0 else "Error"
        return ContainerStatus(**base, state=State.EXITED, pid=st["pid"],
                               started_at=_ts(st["started_at"]), finished_at=_ts(ex["finished_at"]),
                               exit_code=137 if oom else ex["exit_code"],
                               signal=signal.SIGKILL if oom else ex.get("signal"),
                               oom_killed=oom, reason=reason)

    @staticmethod
    def _liveness(st: dict) -> str:
        """"running"; "recording" (exited, a zombie the zygote is about to
        record and reap); or "gone" (its status, if any, is on disk)."""
        state = proc_state(st["pid"], st["start_time"])
        if state is None:
            return "gone"
        if state[0] != "Z":
            return "running"
        return "recording" if process_name(state[1]) == ZYGOTE_NAME else "gone"

    async def wait(self, container_id: str) -> ContainerStatus:
        cdir = self.dirs.container(container_id)
        st = read_json(cdir / "state.json")
        exit_path = str(cdir / "exit")
        if st is not None:
            await aio.wait_pidfd(st["pid"], alive=lambda: self._liveness(st) == "running")
            # Then until the zygote has written the exit status: microseconds,
            # unless it is busy with another request.
            tries = 0
            while not os.path.exists(exit_path) and self._liveness(st) == "recording":
                tries += 1   # every 0.25 ms for the first 10 ms, then backing off
                await asyncio.sleep(0.00025 if tries <= 40 else min(0.00025 * 1.5 ** (tries - 40), 0.05))
        mark("wait: program exited")
        return await self.status(container_id)

    async def stop(self, container_id: str, grace_seconds: float) -> None:
        cdir = self.dirs.container(container_id)
        cfg, st = read_json(cdir / "config.json"), read_json(cdir / "state.json")
        if cfg is None or st is None or not is_alive(st["pid"], st["start_time"]):
            return
        self._signal(st, cfg.get("stop_signal") or signal.SIGTERM)
        try:
            await asyncio.wait_for(self.wait(container_id), timeout=max(grace_seconds, 0))
            return
        except asyncio.TimeoutError:
            pass
        # Every process of the container, wherever it sits in the pid tree.
        await asyncio.to_thread(self._cgroup(cfg["pod_id"], container_id).kill_all)
        self._signal(st, signal.SIGKILL)
        await self.wait(container_id)

    def _signal(self, st: dict, sig: int) -> None:
        try:
            pidfd = sc.pidfd_open(st["pid"])
        except ProcessLookupError:
            return
        try:
            if is_alive(st["pid"], st["start_time"]):
                sc.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            pass
        finally:
            os.close(pidfd)

    async def remove(self, container_id: str) -> None:
        cdir = self.dirs.container(container_id)
        cfg = read_json(cdir / "config.json")
        if cfg is None:
            shutil.rmtree(cdir, ignore_errors=True)
            return
        st = read_json(cdir / "state.json")
        cg = self._cgroup(cfg["pod_id"], container_id)
        if st is not None and self._liveness(st) != "gone":
            self._signal(st, signal.SIGKILL)
            await self.wait(container_id)
        mark("remove: called")
        # destroy() kills stragglers (an exec'd process outside the pid ns).
        cg.destroy()
        mark("remove: cgroup destroyed")
        # The rootfs was mounted only inside the container's mount namespace,
        # which died with its last process: there is nothing to unmount here.
        shutil.rmtree(cdir, ignore_errors=True)
        mark("remove: rmtree done")
        if cfg.get("upper_dir") and cfg.get("work_dir") and not cfg["work_dir"].startswith(str(cdir)):
            shutil.rmtree(cfg["work_dir"], ignore_errors=True)
        mark("remove: done")

    async def list_containers(self) -> Sequence[ContainerStatus]:
        out = []
        for cid in self.dirs.container_ids():
            try:
                out.append(await self.status(cid))
            except KeyError:
                continue  # half-created by a crashed start: cleanup_orphans removes it
        return out

    async def stats(self, container_id: str, *, filesystem: bool = True) -> ContainerStats:
        cfg = read_json(self.dirs.container(container_id) / "config.json")
        if cfg is None:
            raise KeyError(f"container {container_id}: not found")
        s = self._cgroup(cfg["pod_id"], container_id).stats()
        m = s.memory
        # The writable layer's size is a walk of its tree: off the event loop.
        upper = cfg.get("upper_dir") or str(self.dirs.container(container_id) / "upper")
        fs_bytes, fs_inodes = await asyncio.to_thread(disk_usage, Path(upper)) if filesystem else (0, 0)
        return ContainerStats(id=container_id, cpu_usage_seconds=s[0], memory_working_set_bytes=s[1], pids=s[2],
                              memory_usage_bytes=m.usage, memory_rss_bytes=m.rss, memory_cache_bytes=m.cache,
                              memory_limit_bytes=m.limit, memory_failcnt=m.failcnt, oom_events=m.oom_events,
                              cpu_periods=s.cpu_periods, cpu_throttled_periods=s.cpu_throttled_periods,
                              cpu_throttled_seconds=s.cpu_throttled_seconds, fs_usage_bytes=fs_bytes,
                              fs_inodes=fs_inodes)

    def stdin_fifo(self, container_id: str) -> Path | None:
        path = self.dirs.container(container_id) / STDIN_FIFO
        return path if path.exists() else None

    async def exec(self, container_id: str, argv: Sequence[str], *, tty: bool = False,
                   stdin: AsyncIterator[bytes | TerminalSize] | None = None,
                   output: ExecOutput, size: TerminalSize | None = None) -> ExecResult:
        cdir = self.dirs.container(container_id)
        cfg, st = read_json(cdir / "config.json"), read_json(cdir / "state.json")
        if cfg is None:
            raise KeyError(f"container {container_id}: not found")
        if st is None or not is_alive(st["pid"], st["start_time"]):
            raise StartError(f"container {container_id} is not running")
        cg = self._cgroup(cfg["pod_id"], container_id)
        req = {
            "op": "exec", "args": list(argv), "tty": tty,
            "ns": {k: f"/proc/{st['pid']}/ns/{k}" for k in ("ipc", "uts", "net", "pid", "cgroup", "mnt")},
            "cgroup_procs": [str(p / "cgroup.procs") for p in dict.fromkeys(cg.paths().values())],
            "env": cfg["env"], "working_dir": cfg["working_dir"] or "/", "security": cfg["security"],
        }
        code = await exec_io.run(zygote=self.zygote, req=req, tty=tty, stdin=stdin, output=output,
                                 alive=lambda: is_alive(st["pid"], st["start_time"]), init_pid=st["pid"],
                                 size=size)
        return ExecResult(exit_code=code)

    async def check_health(self) -> str | None:
        problem = await self.zygote.ensure_alive()
        return f"container runtime is down: {problem}" if problem else None

    async def cleanup_orphans(self, keep_pod_ids: set[str]) -> None:
        for cid in self.dirs.container_ids():
            cfg = read_json(self.dirs.container(cid) / "config.json")
            if cfg is None or cfg["pod_id"] not in keep_pod_ids:
                await self.remove(cid)
        for pod_id in self.sandboxes.known_pod_ids():
            if pod_id not in keep_pod_ids:
                await self.remove_sandbox(pod_id)
        # Cgroups of pods we have no record of at all (crash mid-create).
        for name in cgroups.list_cgroups(parent=self.cgroup_parent):
            if name.startswith("pod-") and name[4:] not in keep_pod_ids:
                cgroups.new_manager(parent=self.cgroup_parent, name_path=name).destroy()


def _make_cgroup_with(cg: cgroups.CgroupManager, resources: Resources, procs_files: list[str], *,
                      spare: list[int] | None, zygote: int) -> int | None:
    """Create the container's cgroup and move the zygote's spare process
    into it (if there is one, still that very process and still the
    zygote's); returns the pid moved."""
    sandboxes.make_cgroup(cg, resources)
    if spare is None:
        return None
    pid, start_time = spare
    state = proc_state(pid, start_time)
    if state is None or state[0] == "Z" or state[1] != zygote:
        return None
    try:
        process.join_cgroup(procs_files, pid=pid)
    except ProcessLookupError:
        return None
    return pid


__all__ = ["LinuxRuntime", "Resources"]


STDIN_FIFO = "stdin"


def _stdin_fifo(cdir: Path) -> Path:
    """The container's stdin FIFO (made on its first start; kept across restarts of the program)."""
    path = cdir / STDIN_FIFO
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        pass
    return path
