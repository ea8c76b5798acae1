"""The zygote: a small, single-threaded process that forks every container.

fork() from the threaded gRPC agent is unsafe (locks held by other threads
stay locked in the child), and a fresh Python interpreter per container costs
~80 ms. So the agent's main calls `Zygote.spawn()` before grpc is imported or
any thread exists; the zygote keeps this module's imports warm (gc.freeze()d,
so its children share them copy-on-write) and forks on request.

Protocol: a SOCK_SEQPACKET socketpair. A request is one JSON object
{"op": "start"|"sandbox"|"exec", "fds": [names...], ...} with those fds
passed alongside (SCM_RIGHTS); the reply is one JSON object. For each request
the zygote forks one worker that does the op's work (see container_init.py,
sandbox_init.py, exec_init.py), waits for its short reply on a pipe, reaps it
and answers. Long-lived descendants (container inits, exec parents) are
reparented to the zygote, a child subreaper, which reaps them as they end;
once it is gone they fall to the host's init — they never depend on it.
The zygote exits when the agent's end of the socket closes.
"""
from __future__ import annotations

import array
import asyncio
import gc
import json
import os
import select
import signal
import socket

from agent.runtime.linux import container_init, exec_init, namespaces, sandbox_init
from agent.runtime.linux import syscalls as sc
from agent.runtime.linux.trace import mark

# Ops done by a forked worker (which replies on a pipe), and ops done in the
# zygote itself (start forks the container's init directly, sandbox needs no
# process at all: fewer processes on the hot path).
_HANDLERS = {"exec": exec_init.run_exec}
_IN_ZYGOTE = {"start": container_init.start_in_zygote, "sandbox": sandbox_init.sandbox_in_zygote}
_OWN_NS = ("net", "ipc", "uts", "pid", "mnt")


class ZygoteContext:
    """What an in-zygote op needs: undoing its namespace changes, and making
    a forked child forget it came from the zygote."""

    def __init__(self, *, sock: socket.socket, wake_r: int, wake_w: int) -> None:
        self.sock, self.wake_r, self.wake_w = sock, wake_r, wake_w
        self.own_ns = {k: os.open(f"/proc/self/ns/{k}", os.O_RDONLY | os.O_CLOEXEC) for k in _OWN_NS}

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
        (least of all handles on the host's namespaces)."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        self.sock.close()
        for fd in (self.wake_r, self.wake_w, *self.own_ns.values()):
            os.close(fd)
_MAX_MSG = 1 << 20
_MAX_FDS = 16


class ZygoteError(RuntimeError):
    """The zygote is gone or answered nonsense."""


class Zygote:
    """The agent's handle on its zygote process."""

    def __init__(self, *, sock: socket.socket, pid: int) -> None:
        self._sock = sock
        self.pid = pid
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def spawn(cls) -> "Zygote":
        """Fork the zygote. Call before any thread exists (before grpc import)."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                parent.close()
                _serve(child)
            finally:
                os._exit(0)
        child.close()
        return cls(sock=parent, pid=pid)

    async def request(self, req: dict, fds: dict[str, int]) -> dict:
        """Send one request (fds are duplicated into the zygote; the caller
        still owns and closes its copies) and return the reply."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            # One lock per event loop (tests run several loops in turn).
            self._lock, self._lock_loop = asyncio.Lock(), loop
        names = list(fds)
        payload = json.dumps({**req, "fds": names}).encode()
        async with self._lock:
            fdarr = array.array("i", [fds[n] for n in names])
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fdarr.tobytes())] if names else []
            self._sock.sendmsg([payload], anc)
            fut: asyncio.Future = loop.create_future()
            fileno = self._sock.fileno()
            loop.add_reader(fileno, lambda: fut.done() or fut.set_result(None))
            try:
                await fut
            finally:
                loop.remove_reader(fileno)
            data = self._sock.recv(_MAX_MSG)
        if not data:
            raise ZygoteError(f"zygote (pid {self.pid}) exited")
        return json.loads(data)

    def close(self) -> None:
        """Close the socket: the zygote sees EOF and exits; reap it."""
        if self._sock.fileno() < 0:
            return
        self._sock.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass  # not our child (handed to us) or already reaped


def _serve(sock: socket.socket) -> None:
    """The zygote's whole life. Single-threaded; one request at a time."""
    sc.set_process_name("skiff-zygote")
    # fds 0-2 must be taken (by /dev/null if the agent had them closed), or a
    # received fd could land there and be clobbered when a child wires stdio.
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            nul = os.open(os.devnull, os.O_RDWR)
            if nul != fd:
                os.dup2(nul, fd)
                os.close(nul)
    # Orphaned container inits come to us rather than to the host's init,
    # and we reap them; that keeps zombies off hosts whose init does not reap.
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C for the agent is not for us
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    try:  # warm what the container's last steps import
        import agent.runtime.linux.security  # noqa: F401  (pyflakes: warm import)
    except ImportError:
        pass
    mark("zygote: serving")  # opens the trace file now, so every child inherits it
    gc.collect()
    gc.freeze()  # children then do not dirty the shared pages with gc bookkeeping
    ctx = ZygoteContext(sock=sock, wake_r=wake_r, wake_w=wake_w)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            if fd == wake_r:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                _reap()
                continue
            msg, anc, _, _ = sock.recvmsg(_MAX_MSG, socket.CMSG_SPACE(_MAX_FDS * 4))
            if not msg:
                return  # the agent is gone
            received: list[int] = []
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    arr = array.array("i")
                    arr.frombytes(data[:len(data) - len(data) % arr.itemsize])
                    received.extend(arr)
            try:
                reply = _handle(json.loads(msg), received, ctx)
            except Exception as e:  # noqa: BLE001 - the zygote must survive any request
                reply = {"error": f"zygote: {type(e).__name__}: {e}"}
            finally:
                for fd in received:
                    os.close(fd)
            sock.send(json.dumps(reply).encode())


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


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
