"""The probe handlers: exec in the container, and httpGet / tcpSocket / grpc
from the node into the pod's network namespace.

Network probes cost no thread and no process. Each runs as a coroutine on the
agent's event loop; its socket is created inside the pod's network namespace
(`NetnsSockets.socket`: setns into the pinned namespace, socket(), setns back,
all on the loop's thread without yielding — a few sockets at a time, so a pod's
probes share one setns pair), and everything after that — connect, TLS, the
request, the answer — is non-blocking on a socket that lives in the pod's
namespace. A tcpSocket or plain httpGet probe of an IP address is one exchange
of loop callbacks (`_exchange`: connect, send, read the status line) with one
future and one timer: no stream objects, no per-step futures (issue 10: the
probe CPU budget). So a pod needs no route from the
node, and a probe of 127.0.0.1 reaches the pod's loopback, as a kubelet
probe of the pod's IP would reach the pod.

Messages are kubelet's where a user compares them (`HTTP probe failed with
statuscode: 500`, `dial tcp 10.0.0.5:8080: connect: connection refused`).
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
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


def _exchange(sock: socket.socket, address: tuple[str, int], request: bytes | None,
              timeout: float) -> asyncio.Future:
    """Connect, send `request` and read up to the first line of the answer, as
    loop callbacks: resolves to those bytes (b"" without a request), or raises
    _Dial (the connect failed), OSError (later) or TimeoutError. The socket is
    closed with a reset when the future is done, cancelled included."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    fd = sock.fileno()
    data = bytearray()
    pending = [request]

    def fail(exc: BaseException) -> None:
        if not future.done():
            future.set_exception(exc)

    def readable() -> None:
        try:
            chunk = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            fail(exc)
            return
        data.extend(chunk)
        if (not chunk or b"\n" in data or len(data) >= 4096) and not future.done():
            future.set_result(bytes(data))

    def writable() -> None:
        if pending[0] is request:   # the connect has finished: its outcome is SO_ERROR
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                fail(_Dial(OSError(err, os.strerror(err))))
                return
            if request is None:
                if not future.done():
                    future.set_result(b"")
                return
        try:
            sent = sock.send(pending[0])
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            fail(exc)
            return
        pending[0] = pending[0][sent:]
        if not pending[0]:
            loop.add_reader(fd, readable)
            loop.remove_writer(fd)

    def done(_: asyncio.Future) -> None:
        timer.cancel()
        loop.remove_writer(fd)
        loop.remove_reader(fd)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)   # no TIME_WAIT left behind
        sock.close()

    timer = loop.call_later(timeout, fail, TimeoutError())
    future.add_done_callback(done)
    try:
        sock.connect(address)
    except (BlockingIOError, InterruptedError):
        loop.add_writer(fd, writable)
    except OSError as exc:
        fail(_Dial(exc))
    else:
        loop.add_writer(fd, writable)   # connected at once (rare): writable now, so called next
    return future


async def tcp_socket(sockets: Sockets, netns: Path | None, *, host: str, port: int, timeout: float) -> Outcome:
    if _is_ip(host):
        try:
            await _exchange(sockets.socket(netns, socket.AF_INET6 if ":" in host else socket.AF_INET),
                            (host, port), None, timeout)
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


async def http_get(sockets: Sockets, netns: Path | None, *, host: str, port: int, path: str, scheme: str,
                   headers: Sequence[tuple[str, str]], timeout: float) -> Outcome:
    """kubelet's HTTP probe: success on 200-399 (a redirect is not followed)."""
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
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    if scheme != "HTTPS" and _is_ip(host):
        try:
            answer = await _exchange(sockets.socket(netns, socket.AF_INET6 if ":" in host else socket.AF_INET),
                                     (host, port), request, timeout)
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
