"""The probe handlers: exec in the container, and httpGet / tcpSocket / grpc
from the node into the pod's network namespace.

Network probes cost no thread and no process. Each runs as a coroutine on the
agent's event loop; its socket is created inside the pod's network namespace
(`NetnsSockets.socket`: setns into the pinned namespace, socket(), setns back,
all on the loop's thread without yielding — a few sockets at a time, so a pod's
probes share one setns pair), and everything after that — connect, TLS, the
request, the answer — is non-blocking on a socket that lives in the pod's
namespace. A tcpSocket or plain httpGet probe of an IP address is one exchange
of callbacks (`_exchange`: connect, send, read the status line) with one
future: no stream objects, no per-step futures; the agent's go through one
`Exchanges` — the probes' sockets in an epoll set of their own that the loop
watches as one reader, timeouts in shared 0.1 s buckets — so a probe adds
no selector registration or timer of its own (issue 10: the probe CPU
budget; an HTTP probe's request bytes are made once). So a pod needs no route from the
node, and a probe of 127.0.0.1 reaches the pod's loopback, as a kubelet
probe of the pod's IP would reach the pod.

Messages are kubelet's where a user compares them (`HTTP probe failed with
statuscode: 500`, `dial tcp 10.0.0.5:8080: connect: connection refused`).
"""
from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import select
import socket
import ssl
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from agent.runtime.interface import ExecResult

USER_AGENT = "kube-probe/1.30"
MAX_OUTPUT = 10 * 1024   # kubelet keeps this much of an exec probe's output
_LINGER_RESET = struct.pack("ii", 1, 0)   # SO_LINGER on, 0 s: close() sends RST


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str = ""    # why it failed (the Unhealthy event's text)


class Sockets(Protocol):
    def socket(self, netns: Path | None, family: int) -> socket.socket:
        """A non-blocking TCP socket in the network namespace pinned at netns (None: the node's)."""


class NetnsSockets:
    """Sockets created inside pinned network namespaces, from the calling thread.

    setns(2) moves only the calling thread; it is moved back before this
    returns, and a failure to move back ends the process rather than leave the
    agent's loop in a pod's namespace. The namespace files stay open while
    their pods are probed (`forget` closes one)."""

    def __init__(self) -> None:
        from agent.runtime.linux import syscalls  # the thin libc layer (setns)
        self._setns = syscalls.setns
        self._clone_newnet = syscalls.CLONE_NEWNET
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._fds: dict[Path, int] = {}
        self._spare: dict[tuple[Path, int], list[socket.socket]] = {}   # made in the netns, not yet used

    BATCH = 3   # sockets made per setns pair: a pod's probes (3 in the usual pod) share one

    def socket(self, netns: Path | None, family: int) -> socket.socket:
        kind = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        if netns is None:
            return socket.socket(family, kind)
        spare = self._spare.get((netns, family))
        if spare:
            return spare.pop()
        fd = self._fds.get(netns)
        if fd is None:
            fd = self._fds[netns] = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        self._setns(fd, self._clone_newnet)
        try:
            made = [socket.socket(family, kind) for _ in range(self.BATCH)]
        finally:
            try:
                self._setns(self._home, self._clone_newnet)
            except OSError:  # never keep serving from a pod's namespace
                os._exit(70)
        self._spare[(netns, family)] = made[1:]
        return made[0]

    def forget(self, netns: Path) -> None:
        for family in (socket.AF_INET, socket.AF_INET6):
            for sock in self._spare.pop((netns, family), ()):
                sock.close()
        fd = self._fds.pop(netns, None)
        if fd is not None:
            os.close(fd)


async def _connect(sockets: Sockets, netns: Path | None, host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = sockets.socket(netns, family)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _dial_error(host: str, port: int, exc: BaseException) -> str:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, ConnectionRefusedError):
        return f"dial tcp {where}: connect: connection refused"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return f"dial tcp {where}: i/o timeout"
    return f"dial tcp {where}: {getattr(exc, 'strerror', None) or exc}"


class _Dial(Exception):
    """The connect of an exchange failed (the OSError is its cause)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _is_ip(host: str, _known: dict[str, bool] = {}) -> bool:
    known = _known.get(host)
    if known is None:
        try:
            ipaddress.ip_address(host)
            known = True
        except ValueError:
            known = False
        if len(_known) < 4096:
            _known[host] = known
    return known


class _Op:
    """One exchange in flight: connect, send the request, read up to the
    first line of the answer. step() runs when its socket is ready and says
    which readiness it waits for next (EPOLLOUT, EPOLLIN), or 0 when its
    future is done."""
    __slots__ = ("sock", "fd", "future", "request", "data", "connected")

    def __init__(self, sock: socket.socket, future: asyncio.Future, request: bytes | None) -> None:
        self.sock, self.fd, self.future, self.request = sock, sock.fileno(), future, request
        self.data = bytearray()
        self.connected = False

    def connect(self, address: tuple[str, int]) -> bool:
        """Start the connect; False when it failed at once (the future has the error)."""
        try:
            self.sock.connect(address)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self.future.set_exception(_Dial(exc))
            return False
        return True   # connected at once (rare) or under way: writable when done either way

    def step(self) -> int:
        sock, future = self.sock, self.future
        if future.done():
            return 0
        if not self.connected:   # the connect has finished: its outcome is SO_ERROR
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                future.set_exception(_Dial(OSError(err, os.strerror(err))))
                return 0
            if self.request is None:
                future.set_result(b"")
                return 0
            self.connected = True
        try:
            if self.request:
                self.request = self.request[sock.send(self.request):]
                return select.EPOLLOUT if self.request else select.EPOLLIN
            chunk = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return select.EPOLLIN if self.connected and not self.request else select.EPOLLOUT
        except OSError as exc:
            future.set_exception(exc)
            return 0
        self.data += chunk
        if not chunk or b"\n" in self.data or len(self.data) >= 4096:
            future.set_result(bytes(self.data))
            return 0
        return select.EPOLLIN

    def close(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)   # no TIME_WAIT left behind
        self.sock.close()


class Exchanges:
    """Every network probe's I/O at a fixed, small cost per probe (issue 10,
    the probe CPU budget). The probes' sockets sit in an epoll set of their
    own, which the event loop watches as ONE reader: a probe costs two or
    three epoll_ctl calls and no selector bookkeeping or handle objects, and
    one wake-up of the loop serves every probe whose socket is ready.
    Timeouts are buckets of TIMEOUT_RESOLUTION seconds with one loop timer
    each, not a timer per probe: a probe times out at most that much late,
    never early. The ProbeManager owns one (close() with it)."""

    TIMEOUT_RESOLUTION = 0.1

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.epoll = select.epoll()
        self.ops: dict[int, _Op] = {}
        self.buckets: dict[int, list[_Op]] = {}
        loop.add_reader(self.epoll.fileno(), self._ready)

    def start(self, sock: socket.socket, address: tuple[str, int], request: bytes | None,
              timeout: float) -> asyncio.Future:
        op = _Op(sock, self.loop.create_future(), request)
        op.future.add_done_callback(lambda _: self._finish(op))
        if not op.connect(address):
            return op.future
        self.ops[op.fd] = op
        self.epoll.register(op.fd, select.EPOLLOUT)
        key = math.ceil((self.loop.time() + timeout) / self.TIMEOUT_RESOLUTION)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = []
            self.loop.call_at(key * self.TIMEOUT_RESOLUTION, self._expire, key)
        bucket.append(op)
        return op.future

    def _expire(self, key: int) -> None:
        for op in self.buckets.pop(key, ()):
            if not op.future.done():
                op.future.set_exception(TimeoutError())

    def _ready(self) -> None:
        for fd, _ in self.epoll.poll(0):
            op = self.ops.get(fd)
            if op is not None:
                before = select.EPOLLIN if op.connected and not op.request else select.EPOLLOUT
                interest = op.step()
                if interest and interest != before:
                    self.epoll.modify(fd, interest)

    def _finish(self, op: _Op) -> None:
        if self.ops.get(op.fd) is op:
            del self.ops[op.fd]
            self.epoll.unregister(op.fd)
        op.close()

    def close(self) -> None:
        for op in list(self.ops.values()):
            op.future.cancel()
            self._finish(op)
        self.loop.remove_reader(self.epoll.fileno())
        self.epoll.close()


def _exchange(sock: socket.socket, address: tuple[str, int], request: bytes | None,
              timeout: float, exchanges: Exchanges | None = None) -> asyncio.Future:
    """Connect, send `request` and read up to the first line of the answer,
    as loop callbacks (no task, no stream): resolves to those bytes (b""
    without a request), or raises _Dial (the connect failed), OSError (later)
    or TimeoutError. The socket is closed with a reset when the future is
    done, cancelled included. Through `exchanges` when given (the agent's
    probes); else on the loop's own selector, with a timer of its own."""
    if exchanges is not None:
        return exchanges.start(sock, address, request, timeout)
    loop = asyncio.get_running_loop()
    op = _Op(sock, loop.create_future(), request)
    watching = [0]

    def watch(interest: int) -> None:
        if interest == watching[0]:
            return
        if watching[0] == select.EPOLLOUT:
            loop.remove_writer(op.fd)
        elif watching[0] == select.EPOLLIN:
            loop.remove_reader(op.fd)
        if interest == select.EPOLLOUT:
            loop.add_writer(op.fd, ready)
        elif interest == select.EPOLLIN:
            loop.add_reader(op.fd, ready)
        watching[0] = interest

    def ready() -> None:
        watch(op.step())

    def done(_: asyncio.Future) -> None:
        timer.cancel()
        watch(0)
        op.close()

    timer = loop.call_later(timeout, lambda: op.future.done() or op.future.set_exception(TimeoutError()))
    op.future.add_done_callback(done)
    if op.connect(address):
        watch(select.EPOLLOUT)
    return op.future


async def tcp_socket(sockets: Sockets, netns: Path | None, *, host: str, port: int, timeout: float,
                     exchanges: Exchanges | None = None) -> Outcome:
    if _is_ip(host):
        try:
            await _exchange(sockets.socket(netns, socket.AF_INET6 if ":" in host else socket.AF_INET),
                            (host, port), None, timeout, exchanges)
            return Outcome(True)
        except _Dial as exc:
            return Outcome(False, _dial_error(host, port, exc.error))
        except (OSError, TimeoutError) as exc:
            return Outcome(False, _dial_error(host, port, exc))
    try:
        async with asyncio.timeout(timeout):
            sock = await _connect(sockets, netns, host, port)
        # Close with a reset: a probe a second must not leave a TIME_WAIT socket behind each time.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.close()
        return Outcome(True)
    except (OSError, TimeoutError) as exc:
        return Outcome(False, _dial_error(host, port, exc))


def _http_request(host: str, port: int, path: str, scheme: str, headers: tuple[tuple[str, str], ...],
                  _made: dict[tuple, tuple[str, str, bytes]] = {}) -> tuple[str, str, bytes]:
    """(SCHEME, url, request bytes) of an HTTP probe; made once per probe (a probe a second asks again)."""
    key = (host, port, path, scheme, headers)
    made = _made.get(key)
    if made is None:
        made = _make_http_request(host, port, path, scheme, headers)
        if len(_made) >= 4096:
            _made.clear()
        _made[key] = made
    return made


def _make_http_request(host: str, port: int, path: str, scheme: str,
                       headers: tuple[tuple[str, str], ...]) -> tuple[str, str, bytes]:
    scheme = (scheme or "HTTP").upper()
    url_host = f"[{host}]" if ":" in host else host
    url = f"{scheme.lower()}://{url_host}:{port}{path or '/'}"
    names = {name.lower() for name, _ in headers}
    lines = [f"GET {path or '/'} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {url_host}:{port}")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in names:
        lines.append("Accept: */*")
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("Connection: close")
    return scheme, url, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


async def http_get(sockets: Sockets, netns: Path | None, *, host: str, port: int, path: str, scheme: str,
                   headers: Sequence[tuple[str, str]], timeout: float,
                   exchanges: Exchanges | None = None) -> Outcome:
    """kubelet's HTTP probe: success on 200-399 (a redirect is not followed)."""
    scheme, url, request = _http_request(host, port, path, scheme, tuple(headers))
    if scheme != "HTTPS" and _is_ip(host):
        try:
            answer = await _exchange(sockets.socket(netns, socket.AF_INET6 if ":" in host else socket.AF_INET),
                                     (host, port), request, timeout, exchanges)
        except _Dial as exc:
            return Outcome(False, f'Get "{url}": {_dial_error(host, port, exc.error)}')
        except TimeoutError:
            return Outcome(False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting '
                                  f'headers)')
        except OSError as exc:
            return Outcome(False, f'Get "{url}": {exc}')
        return _http_outcome(url, answer.split(b"\n", 1)[0])
    try:
        async with asyncio.timeout(timeout):
            try:
                sock = await _connect(sockets, netns, host, port)
            except OSError as exc:
                return Outcome(False, f'Get "{url}": {_dial_error(host, port, exc)}')
            if scheme == "HTTPS":
                status_line = await _https_status(sock, host, request)
            else:
                status_line = await _http_status(sock, request)
    except TimeoutError:
        return Outcome(False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting '
                              f'headers)')
    except (OSError, ssl.SSLError) as exc:
        return Outcome(False, f'Get "{url}": {exc}')
    return _http_outcome(url, status_line)


def _http_outcome(url: str, status_line: bytes) -> Outcome:
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return Outcome(False, f'Get "{url}": malformed HTTP response {status_line[:80]!r}')
    code = int(parts[1])
    if 200 <= code < 400:
        return Outcome(True)
    return Outcome(False, f"HTTP probe failed with statuscode: {code}")


async def _http_status(sock: socket.socket, request: bytes) -> bytes:
    """The status line, over the bare socket: no transport or stream objects per probe."""
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendall(sock, request)
        data = b""
        while b"\n" not in data and len(data) < 4096:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\n", 1)[0]
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)   # no TIME_WAIT left behind
        sock.close()


async def _https_status(sock: socket.socket, host: str, request: bytes) -> bytes:
    # As kubelet: TLS without verifying the certificate.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(sock=sock, ssl=context, server_hostname=host)
    try:
        writer.write(request)
        await writer.drain()
        return await reader.readline()
    finally:
        writer.close()


# ---------------------------------------------------------------- grpc

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PING, _GOAWAY = 0, 1, 3, 4, 6, 7
_END_STREAM, _ACK, _END_HEADERS = 0x1, 0x1, 0x4
_SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _hpack_literal(name: str, value: str) -> bytes:
    """A header as an HPACK literal without indexing, new name, no Huffman."""
    def string(text: str) -> bytes:
        raw = text.encode()
        if len(raw) < 127:
            return bytes([len(raw)]) + raw
        n, out = len(raw) - 127, bytearray([127])
        while n >= 128:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out) + raw
    return b"\x00" + string(name) + string(value)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


async def grpc_health(sockets: Sockets, netns: Path | None, *, host: str, port: int, service: str,
                      timeout: float) -> Outcome:
    """grpc.health.v1.Health/Check over a minimal HTTP/2 exchange (one stream, no TLS, as kubelet)."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    writer = None
    try:
        async with asyncio.timeout(timeout):
            try:
                sock = await _connect(sockets, netns, host, port)
            except OSError as exc:
                return Outcome(False, f'timeout: failed to connect service "{authority}" within {timeout:g}s: '
                                      f"{_dial_error(host, port, exc)}")
            reader, writer = await asyncio.open_connection(sock=sock)
            message = (b"\x0a" + _varint(len(service.encode())) + service.encode()) if service else b""
            block = b"".join(_hpack_literal(n, v) for n, v in (
                (":method", "POST"), (":scheme", "http"), (":path", "/grpc.health.v1.Health/Check"),
                (":authority", authority), ("content-type", "application/grpc"), ("te", "trailers"),
                ("user-agent", USER_AGENT)))
            writer.write(_PREFACE + _frame(_SETTINGS, 0, 0) + _frame(_HEADERS, _END_HEADERS, 1, block)
                         + _frame(_DATA, _END_STREAM, 1, b"\x00" + struct.pack(">I", len(message)) + message))
            await writer.drain()
            data = b""
            while True:
                head = await reader.readexactly(9)
                length = int.from_bytes(head[:3], "big")
                kind, flags, stream = head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                payload = await reader.readexactly(length)
                if kind == _SETTINGS and not flags & _ACK:
                    writer.write(_frame(_SETTINGS, _ACK, 0))
                elif kind == _PING and not flags & _ACK:
                    writer.write(_frame(_PING, _ACK, 0, payload))
                elif kind == _GOAWAY or (kind == _RST_STREAM and stream == 1):
                    return Outcome(False, "rpc error: the server reset the health check stream")
                elif kind == _DATA and stream == 1:
                    data += payload
                    if len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[1:5], "big"):
                        break
                elif kind == _HEADERS and stream == 1 and flags & _END_STREAM:
                    return Outcome(False, "rpc error: the health check ended without a response "
                                          "(unknown service or method)")
    except TimeoutError:
        return Outcome(False, f'timeout: health rpc did not complete within {timeout:g}s')
    except (OSError, asyncio.IncompleteReadError) as exc:
        return Outcome(False, f"rpc error: {exc}")
    finally:
        if writer is not None:
            writer.close()
    status = _serving_status(data[5:5 + int.from_bytes(data[1:5], "big")])
    if status == 1:
        return Outcome(True)
    return Outcome(False, f'service unhealthy (responded with "{_SERVING_STATUS.get(status, status)}")')


def _serving_status(message: bytes) -> int:
    """HealthCheckResponse.status (field 1, an enum); 0 when absent."""
    i = 0
    while i < len(message):
        key = message[i]
        i += 1
        value, shift = 0, 0
        while i < len(message):
            b = message[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if key == 0x08:
            return value
        if key & 7 == 2:
            i += value
    return 0


# ---------------------------------------------------------------- exec

class _Collect:
    def __init__(self) -> None:
        self.data = b""

    async def stdout(self, data: bytes) -> None:
        self.data = (self.data + data)[:MAX_OUTPUT]

    async def stderr(self, data: bytes) -> None:
        self.data = (self.data + data)[:MAX_OUTPUT]


class Exec(Protocol):
    async def exec(self, container_id: str, argv: Sequence[str], *, output: object) -> ExecResult: ...


async def exec_probe(runtime: Exec, container_id: str, command: Sequence[str], *, timeout: float) -> Outcome:
    """Exit 0 is success; the output is the failure's message (kubelet's)."""
    out = _Collect()
    try:
        async with asyncio.timeout(timeout):
            result = await runtime.exec(container_id, list(command), output=out)
    except TimeoutError:
        return Outcome(False, f"command {' '.join(command)!r} timed out")
    except Exception as exc:  # the container went away meanwhile: a failed probe, as in kubelet
        return Outcome(False, str(exc))
    if result.exit_code == 0:
        return Outcome(True)
    text = out.data.decode(errors="replace").strip()
    return Outcome(False, text or f"command {' '.join(command)!r} exited with {result.exit_code}")
