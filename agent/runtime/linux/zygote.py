"""The zygote: the node's one process that forks and watches every container.

A fresh Python interpreter per container costs ~80 ms and fork() from the
threaded gRPC agent is unsafe, so containers are forked by this small,
single-threaded process instead: started once (its own interpreter, its own
session), it keeps the runtime's modules warm (gc.freeze()d, so children
share them copy-on-write) and forks on request.

It is also the parent of every container's program, and so the one place
that learns how each ended: when a program exits, the zygote writes its exit
status to the container's exit file (run_dir/containers/<id>/exit), then
reaps it. One process for the node, not one per container: a container
costs no memory of ours beyond a dict entry.

It outlives the agent. It listens on run_dir/zygote.sock (its pid in
run_dir/zygote.pid); an agent that starts finds it there and attaches (one
agent at a time), so containers keep running and their exit statuses keep
being recorded across agent restarts and crashes. It exits once no agent is attached and nothing of its own runs.
If the zygote itself is killed, the containers keep running (reparented to
the host's init), but their exit statuses are lost; the runtime reports such
a container as ContainerStatusUnknown (exit code 137), as Kubernetes does.

Protocol: SOCK_SEQPACKET. A request is one JSON object {"op": ..., "fds":
[names...], ...} with those fds passed alongside (SCM_RIGHTS); the reply is
one JSON object. A request is at most MAX_REQUEST_BYTES (4 MiB, above
anything the API server stores: its objects fit in etcd's 1.5 MiB); the
agent's socket buffer is raised to carry it, a larger one is refused by the
agent before it is sent (RequestTooLarge: that container fails, nothing else),
and the zygote answers a truncated or malformed request with an error. The
zygote survives any request; a reply it cannot send is replaced by a short
error. Ops: hello (protocol version, pid), start, sandbox, exec,
bye (the agent is leaving: "exiting" says whether the zygote goes too),
retire (a newer agent takes over the socket; this zygote only finishes
watching its containers).
"""
from __future__ import annotations

import errno
import gc
import json
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    import subprocess

from agent.runtime.linux import container_init, exec_init, namespaces, sandbox_init
from agent.runtime.linux import syscalls as sc
from agent.runtime.linux.state import proc_start_time, write_json
from agent.runtime.linux.trace import mark

PROTOCOL = 2
SOCKET_NAME = "zygote.sock"
PID_FILE = "zygote.pid"
ZYGOTE_NAME = "skiff-zygote"   # its comm, as ps shows it

# Ops done by a forked worker (which replies on a pipe), and ops done in the
# zygote itself (start forks the container's program directly, sandbox needs
# no process at all: fewer processes on the hot path).
_HANDLERS = {"exec": exec_init.run_exec}
_IN_ZYGOTE = {"start": container_init.start_in_zygote, "sandbox": sandbox_init.sandbox_in_zygote}
_OWN_NS = ("net", "ipc", "uts", "pid", "mnt")
MAX_REQUEST_BYTES = 4 << 20
_MAX_MSG = MAX_REQUEST_BYTES
_MAX_REPLY = 64 << 10
_MAIN = "import sys; from agent.runtime.linux.zygote import main; main(sys.argv[1:])"
_MAX_FDS = 16


class ZygoteError(RuntimeError):
    """The zygote is gone or answered nonsense."""


class RequestTooLarge(ZygoteError):
    """One request too large for the zygote's socket: refused before it was
    sent, so the zygote and the connection are untouched."""


def _grow_send_buffer(sock: socket.socket) -> int:
    """Let `sock` send one message of MAX_REQUEST_BYTES (a SEQPACKET message
    must fit the sender's buffer: "Message too long" otherwise); returns the
    largest message it now takes. SO_SNDBUFFORCE passes net.core.wmem_max
    (root, as the agent runs); without it the plain limit applies."""
    for option in (getattr(socket, "SO_SNDBUFFORCE", 32), socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, MAX_REQUEST_BYTES + 4096)
            break
        except OSError:
            continue
    # The kernel reports (and checks against) twice what was set, less its own overhead.
    return min(MAX_REQUEST_BYTES, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - 32)


# ---------------------------------------------------------------- the agent's side

def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class Zygote:
    """The agent's handle on the node's zygote."""

    def __init__(self, *, sock: socket.socket, pid: int, path: Path) -> None:
        self._sock = sock
        self.pid = pid
        self.path = path
        self.hello: dict = {}
        self._spare: list[int] | None = None   # [pid, start time], from the last hello or start reply
        self._child: subprocess.Popen | None = None   # set when we started it: ours to reap
        self._broken = False
        self._detached = False
        self.max_request = _grow_send_buffer(sock)
        self.last_error = ""   # why the last replacement failed, while it has not succeeded since
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def attach_or_spawn(cls, run_dir: Path) -> "Zygote":
        """Attach to the zygote already serving run_dir (containers of an
        earlier agent run under it), or start one. A zygote of another
        protocol version is retired: it keeps watching its own containers
        and exits when they are gone; a new one serves from now on."""
        path = Path(run_dir) / SOCKET_NAME
        z = cls._attach(path)
        if z is not None:
            if z.hello.get("protocol") == PROTOCOL:
                return z
            z._call_sync({"op": "retire"})
            z._sock.close()
        return cls.spawn(path)

    @classmethod
    def _attach(cls, path: Path) -> "Zygote | None":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            return None
        z = cls(sock=sock, pid=0, path=path)
        try:
            z.hello = z._call_sync({"op": "hello"})
        except ZygoteError:
            sock.close()
            return None
        if "error" in z.hello:   # another agent is attached
            sock.close()
            raise ZygoteError(f"{path}: {z.hello['error']}")
        z.pid = z.hello["pid"]
        z._spare = z.hello.get("spare")
        return z

    @classmethod
    def spawn(cls, path: Path) -> "Zygote":
        """Start a zygote serving `path`. The socket is bound here and handed
        over, so there is no window in which connecting could fail."""
        import subprocess   # agent side only: the zygote process never imports it
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)   # stale: nobody answered on it
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            listener.bind(str(path))
            listener.listen(8)
            # The zygote runs the very code its agent runs: this source tree first.
            tree = str(Path(__file__).resolve().parents[3])
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (tree, os.environ.get("PYTHONPATH")))))
            child = subprocess.Popen(
                [sys.executable, "-c", _MAIN, str(listener.fileno())], env=env,
                pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL, start_new_session=True, cwd="/")
        finally:
            listener.close()
        z = cls._attach(path)
        if z is None:
            child.kill()
            child.wait()
            raise ZygoteError(f"the zygote started for {path} did not answer")
        z._child = child
        return z

    def _call_sync(self, req: dict) -> dict:
        try:
            self._sock.sendmsg([json.dumps({**req, "fds": []}).encode()])
            data = self._sock.recv(_MAX_REPLY)
        except OSError as e:
            raise ZygoteError(f"zygote: {e}") from None
        if not data:
            raise ZygoteError(f"zygote (pid {self.pid}) is gone")
        return json.loads(data)

    async def request(self, req: dict, fds: dict[str, int]) -> dict:
        """Send one request (fds are duplicated into the zygote; the caller
        still owns and closes its copies) and return the reply."""
        import asyncio   # agent side only: the zygote process never imports it
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            # One lock per event loop (tests run several loops in turn).
            self._lock, self._lock_loop = asyncio.Lock(), loop
        names = list(fds)
        payload = self.encode(req, names)
        async with self._lock:
            if self.closed:
                raise ZygoteError("detached from the zygote (closed)")
            if self._broken or self._gone():
                self._replace()
            fdlist = [fds[n] for n in names]
            try:
                socket.send_fds(self._sock, [payload], fdlist)
            except OSError as e:
                if e.errno == errno.EMSGSIZE:   # our buffer, not the zygote: it is fine
                    raise RequestTooLarge(f"the {req.get('op', '')} request is {len(payload)} bytes, "
                                          f"too large for the runtime's zygote socket ({e.strerror})") from None
                # Gone before it heard anything: nothing was done, so a
                # fresh zygote can take the request.
                self._replace()
                try:
                    socket.send_fds(self._sock, [payload], fdlist)
                except OSError as e:
                    self._broken = True
                    raise ZygoteError(f"zygote (pid {self.pid}): {e}") from None
            fut: asyncio.Future = loop.create_future()
            fileno = self._sock.fileno()
            loop.add_reader(fileno, lambda: fut.done() or fut.set_result(None))
            try:
                await fut
            finally:
                loop.remove_reader(fileno)
            try:
                data = self._sock.recv(_MAX_REPLY)
            except OSError:
                data = b""
        if not data:
            self._broken = True
            raise ZygoteError(f"zygote (pid {self.pid}) exited")
        reply = json.loads(data)
        if "spare" in reply:
            self._spare = reply["spare"]
        return reply

    def encode(self, req: dict, fd_names: list[str]) -> bytes:
        """The request as sent; RequestTooLarge if the socket cannot carry it
        (a caller may ask before doing anything it would have to undo)."""
        payload = json.dumps({**req, "fds": fd_names}).encode()
        if len(payload) > self.max_request:
            raise RequestTooLarge(
                f"the {req.get('op', '')} request is {len(payload)} bytes, more than the "
                f"{self.max_request} the runtime's zygote socket carries: the container's command, "
                f"args, env and workingDir are too large")
        return payload

    def take_spare(self) -> list[int] | None:
        """[pid, start time] of the process the next start will use (once:
        a second call says None until a reply names the next one)."""
        spare, self._spare = self._spare, None
        return spare

    def _replace(self) -> None:
        """After the zygote died: a new one for what starts from now on
        (what the dead one watched keeps running, its statuses lost). If no
        new one can be had, stay broken (not detached): the next request, or
        ensure_alive, tries again."""
        self._sock.close()
        self._broken = True
        self.reap_if_exited()
        try:
            fresh = Zygote.attach_or_spawn(self.path.parent)
        except (ZygoteError, OSError) as e:
            self.last_error = f"cannot replace the zygote: {e}"
            raise ZygoteError(self.last_error) from None
        self._sock, self.pid, self.hello, self._child = fresh._sock, fresh.pid, fresh.hello, fresh._child
        self._spare = fresh._spare
        self.max_request = fresh.max_request
        self._broken = False
        self.last_error = ""

    def _gone(self) -> bool:
        """Whether the zygote has hung up (or died); between requests. A reply
        waiting here belongs to a request whose caller was cancelled: dropped,
        or the next request would read it as its own."""
        if self._sock.fileno() < 0:
            return True
        try:
            while self._sock.recv(_MAX_REPLY, socket.MSG_DONTWAIT):
                pass
            return True   # EOF (our protocol has no empty messages)
        except BlockingIOError:
            return False
        except OSError:
            return True

    async def ensure_alive(self) -> str | None:
        """Replace the zygote now if it has died (rather than at the next
        start); None if it serves, else why containers cannot start."""
        import asyncio   # agent side only
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        if self._lock.locked() and not self.closed and not self._broken and _alive(self.pid):
            # A request is being served: the zygote is at work, and that request finds out if it
            # dies. Waiting for the lock would put this check - the node's heartbeat - behind
            # every queued sandbox and start: with 100 pods arriving at once that was more than
            # the 8 s grace, and the node was marked unreachable and its pods evicted.
            return None
        async with self._lock:
            if self.closed:
                return "the runtime is detached from its zygote"
            if self._broken or self._gone():
                try:
                    self._replace()
                except ZygoteError as e:
                    return str(e)
            return None

    @property
    def closed(self) -> bool:
        return self._detached

    def close(self) -> None:
        """Detach. The zygote goes on while containers it watches run, and
        exits once they are gone; if nothing runs it exits now (and is
        reaped here if we started it)."""
        if self.closed:
            return
        self._detached = True
        try:
            exiting = self._call_sync({"op": "bye"}).get("exiting", False)
        except ZygoteError:
            exiting = True
        self._sock.close()
        if not exiting:
            return
        if self._child is not None:
            try:
                self._child.wait(timeout=10)
            except Exception:  # noqa: BLE001 - TimeoutExpired: it will be reaped later
                pass
            return
        # Not our child (attached after an agent restart): wait on a pidfd.
        try:
            pidfd = sc.pidfd_open(self.pid)
        except ProcessLookupError:
            return
        try:
            select.select([pidfd], [], [], 10)
        finally:
            os.close(pidfd)

    def reap_if_exited(self) -> None:
        """Collect our child zygote if it has ended (no zombie left behind)."""
        if self._child is not None:
            self._child.poll()


# ---------------------------------------------------------------- the zygote's side

class ZygoteContext:
    """What an in-zygote op needs: undoing its namespace changes, making a
    forked child forget it came from the zygote, and watching a child."""

    def __init__(self, *, wake_r: int, wake_w: int) -> None:
        self.wake_r, self.wake_w = wake_r, wake_w
        self.sockets: list[socket.socket] = []   # the listener and the agent's connection
        self.own_ns = {k: os.open(f"/proc/self/ns/{k}", os.O_RDONLY | os.O_CLOEXEC) for k in _OWN_NS}
        # pid -> what to do when it ends: {"exit": path, "kill_cgroup": procs file or None}
        self.watched: dict[int, dict] = {}
        self.spare: tuple[int, socket.socket] | None = None   # container_init.fork_spare

    def restore_namespaces(self) -> None:
        """Back into the zygote's own namespaces. If that fails, the next
        container would start in the wrong ones: die instead (the runtime
        then reports the zygote as gone)."""
        try:
            for kind, fd in self.own_ns.items():
                sc.setns(fd, namespaces.NS_FLAGS[kind])
        except BaseException as e:  # noqa: BLE001
            os.write(2, f"skiff-zygote: cannot restore its namespaces: {e}\n".encode())
            os._exit(70)

    def forget_zygote(self) -> None:
        """In a freshly forked child: no zygote signal handling, no zygote fds
        (least of all handles on the host's namespaces or the agent's socket)."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        for s in self.sockets:
            s.close()
        if self.spare is not None:
            self.spare[1].close()
            self.spare = None
        for fd in (self.wake_r, self.wake_w, *self.own_ns.values()):
            os.close(fd)

    def watch(self, pid: int, *, exit_path: str, kill_cgroup: str | None = None) -> None:
        self.watched[pid] = {"exit": exit_path, "kill_cgroup": kill_cgroup}

    def keep_spare(self) -> None:
        """Have a spare ready for the next start (forked now, while the agent
        and the last container get on with their part)."""
        if self.spare is None:
            try:
                self.spare = container_init.fork_spare(self)
            except OSError as e:
                os.write(2, f"skiff-zygote: no spare: {e}\n".encode())

    def spare_identity(self) -> list[int] | None:
        """[pid, start time] of the spare: the agent moves it into the next
        container's cgroup while it sends the request (see LinuxRuntime.start)."""
        if self.spare is None:
            return None
        return [self.spare[0], proc_start_time(self.spare[0])]

    def drop_spare(self) -> None:
        """No agent, no starts: let the spare go (it exits on EOF)."""
        if self.spare is not None:
            self.spare[1].close()
            self.spare = None


def serve(listener: socket.socket) -> None:
    """The zygote's whole life. Single-threaded; one request at a time."""
    sc.set_process_name(ZYGOTE_NAME)
    # fds 0-2 must be taken (by /dev/null if they were closed), or a received
    # fd could land there and be clobbered when a child wires stdio.
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            nul = os.open(os.devnull, os.O_RDWR)
            if nul != fd:
                os.dup2(nul, fd)
                os.close(nul)
    # Orphans of what we fork (exec helpers, a container's descendants when
    # it ends in a shared pid namespace) come to us, not to the host's init.
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    # Signals meant for the agent's terminal or session are not for us.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    try:  # warm what the container's last steps import
        import agent.runtime.linux.security  # noqa: F401  (pyflakes: warm import)
    except ImportError:
        pass
    mark("zygote: serving")  # opens the trace file now, so every child inherits it
    ctx = ZygoteContext(wake_r=wake_r, wake_w=wake_w)
    bound = os.stat(listener.getsockname()).st_ino
    # Beside the socket, for people and tools (`skiff down`): which process it is.
    pid_file = os.path.join(os.path.dirname(listener.getsockname()), PID_FILE)
    with open(pid_file + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(pid_file + ".tmp", pid_file)
    conn: socket.socket | None = None
    ctx.sockets = [listener]
    gc.collect()
    gc.freeze()  # children then do not dirty the shared pages with gc bookkeeping
    poller = select.poll()
    poller.register(listener.fileno(), select.POLLIN)
    poller.register(wake_r, select.POLLIN)

    def retire() -> None:
        """Stop accepting agents; remove the socket if it is still ours."""
        if listener.fileno() < 0:
            return
        try:
            if os.stat(listener.getsockname()).st_ino == bound:
                os.unlink(listener.getsockname())
            with open(pid_file) as f:
                if f.read().strip() == str(os.getpid()):
                    os.unlink(pid_file)
        except OSError:
            pass
        poller.unregister(listener.fileno())
        listener.close()

    attached = False   # idle before the first agent came is not idle
    while True:
        if attached and conn is None and not _has_children():
            retire()
            return
        for fd, _ in poller.poll():
            if fd == wake_r:
                _drain(wake_r)
                _reap(ctx)
            elif fd == listener.fileno():
                new, _ = listener.accept()
                if conn is not None:
                    _refuse(new, f"another agent is attached to this zygote (pid {os.getpid()})")
                    continue
                conn, attached = new, True
                ctx.sockets = [listener, conn]
                poller.register(conn.fileno(), select.POLLIN)
                ctx.keep_spare()
            elif conn is not None and fd == conn.fileno():
                reply, gone = _serve_one(conn, ctx, retire)
                if gone:
                    poller.unregister(conn.fileno())
                    conn.close()
                    conn = None
                    ctx.sockets = [listener]
                    ctx.drop_spare()
                else:
                    ctx.keep_spare()   # for the next start (a start made one before replying)


def _serve_one(conn: socket.socket, ctx: ZygoteContext, retire) -> tuple[dict | None, bool]:
    """Read and answer one request; (reply, whether the agent has gone)."""
    try:
        msg, received, flags, _ = socket.recv_fds(conn, _MAX_MSG, _MAX_FDS)
    except OSError:
        return None, True
    if not msg:
        for fd in received:
            os.close(fd)
        return None, True
    gone = False
    try:
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ValueError(f"request larger than {_MAX_MSG} bytes or with more than {_MAX_FDS} fds")
        req = json.loads(msg)
        op = req.get("op")
        if op == "hello":
            reply = {"protocol": PROTOCOL, "pid": os.getpid(), "watching": len(ctx.watched),
                     "spare": ctx.spare_identity()}
        elif op == "bye":
            # No agent, no starts: the spare goes (on EOF); if nothing else
            # of ours runs, so do we, and the agent may wait for that.
            spare = {ctx.spare[0]} if ctx.spare is not None else set()
            ctx.drop_spare()
            _reap(ctx)
            reply, gone = {"exiting": _children() <= spare}, True
        elif op == "retire":
            retire()
            reply = {"ok": True}
        else:
            reply = _handle(req, received, ctx)
    except Exception as e:  # noqa: BLE001 - the zygote must survive any request
        reply = {"error": f"zygote: {type(e).__name__}: {e}"}
    finally:
        for fd in received:
            os.close(fd)
    try:
        _send_reply(conn, reply)
    except OSError:
        gone = True
    return reply, gone


def _send_reply(conn: socket.socket, reply: dict) -> None:
    """Send a reply; one too large for the socket (an error echoing a huge
    request) goes as a short error instead, never as our end."""
    data = json.dumps(reply).encode()
    if len(data) > _MAX_REPLY:
        data = json.dumps({"error": f"zygote: reply of {len(data)} bytes too large: "
                                    f"{str(reply.get('error', ''))[:500]}"}).encode()
    try:
        conn.send(data)
    except OSError as e:
        if e.errno != errno.EMSGSIZE:
            raise
        conn.send(json.dumps({"error": f"zygote: reply too large for the socket ({e.strerror})"}).encode())


def _refuse(sock: socket.socket, why: str) -> None:
    """Answer a connection's first request with an error and hang up (read
    it first: closing on an unread message resets the peer's connection)."""
    sock.settimeout(1.0)
    try:
        sock.recv(_MAX_MSG)
        sock.send(json.dumps({"error": why}).encode())
    except OSError:
        pass
    sock.close()


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _has_children() -> bool:
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _children() -> set[int]:
    pid = os.getpid()
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


def _reap(ctx: ZygoteContext) -> None:
    """Record and reap every child that has ended. The exit status is written
    before the child is reaped: while it is a zombie the runtime sees it as
    still being recorded, so it never reads a missing status as lost."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == 0:
            return
        watched = ctx.watched.pop(info.si_pid, None)
        if watched is not None:
            _record_exit(watched, info)
        try:
            os.waitpid(info.si_pid, 0)
        except ChildProcessError:
            pass


def _record_exit(watched: dict, info) -> None:
    if info.si_code == os.CLD_EXITED:
        record = {"exit_code": info.si_status, "signal": None}
    else:  # killed or dumped core
        record = {"exit_code": 128 + info.si_status, "signal": info.si_status}
    record["finished_at"] = time.time()
    try:
        write_json(Path(watched["exit"]), record)
    except OSError:
        pass  # the container's directory is gone: nobody asks any more
    if watched["kill_cgroup"]:
        container_init.kill_rest(watched["kill_cgroup"])
    mark("zygote: exit recorded")


def _handle(req: dict, received: list[int], ctx: ZygoteContext) -> dict:
    op = req.get("op", "")
    handler = _HANDLERS.get(op)
    if handler is None and op not in _IN_ZYGOTE:
        return {"error": f"zygote: unknown op {op!r}"}
    names = req.get("fds", [])
    if len(names) != len(received):
        return {"error": f"zygote: expected {len(names)} fds, got {len(received)}"}
    fds = dict(zip(names, received))
    mark(f"zygote: {op} received")
    if op in _IN_ZYGOTE:
        return _IN_ZYGOTE[op](req, fds, ctx)
    reply_r, reply_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            ctx.forget_zygote()
            os.close(reply_r)
            handler(req, fds, reply_w)
        finally:
            os._exit(0)
    os.close(reply_w)
    chunks = []
    while chunk := os.read(reply_r, 65536):
        chunks.append(chunk)
    os.close(reply_r)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    mark(f"zygote: {req['op']} worker reaped")
    if not chunks:
        return {"error": f"zygote: worker for {req['op']!r} died without a reply"}
    return json.loads(b"".join(chunks))


def main(argv: list[str]) -> None:
    """The zygote process (started by Zygote.spawn): serve on the listening
    socket whose fd is argv[0]."""
    listener = socket.socket(fileno=int(argv[0]))
    listener.set_inheritable(False)
    serve(listener)

