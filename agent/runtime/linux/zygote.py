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

from agent.runtime.linux import container_init, exec_init, sandbox_init
from agent.runtime.linux import syscalls as sc
from agent.runtime.linux.trace import mark

_HANDLERS = {"start": container_init.run_start, "sandbox": sandbox_init.run_sandbox,
             "exec": exec_init.run_exec}
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
        import agent.runtime.linux.security  # noqa: F401
    except ImportError:
        pass
    mark("zygote: serving")  # opens the trace file now, so every child inherits it
    gc.collect()
    gc.freeze()  # children then do not dirty the shared pages with gc bookkeeping
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
                reply = _handle(json.loads(msg), received, sock, wake_r, wake_w)
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


def _handle(req: dict, received: list[int], sock: socket.socket, wake_r: int, wake_w: int) -> dict:
    handler = _HANDLERS.get(req.get("op", ""))
    if handler is None:
        return {"error": f"zygote: unknown op {req.get('op')!r}"}
    names = req.get("fds", [])
    if len(names) != len(received):
        return {"error": f"zygote: expected {len(names)} fds, got {len(received)}"}
    fds = dict(zip(names, received))
    mark(f"zygote: {req['op']} received")
    reply_r, reply_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            sock.close()
            for fd in (wake_r, wake_w, reply_r):
                os.close(fd)
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
