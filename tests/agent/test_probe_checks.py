"""The network probe handlers against real servers on loopback: httpGet
(status codes, headers, refused), tcpSocket, grpc (a Python grpc health
server); and, as root, a socket made inside another network namespace reaches
a server that only listens there."""
from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
import threading

import grpc
import pytest

from agent.prober import checks
from tests.conftest import free_port


class HostSockets:
    def socket(self, netns, family):
        assert netns is None
        return socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)


def run(coro):
    return asyncio.run(coro)


def test_tcp_socket_open_and_closed():
    async def scenario():
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ok = await checks.tcp_socket(HostSockets(), None, host="127.0.0.1", port=port, timeout=1)
        server.close()
        await server.wait_closed()
        closed = await checks.tcp_socket(HostSockets(), None, host="127.0.0.1", port=port, timeout=1)
        return ok, closed, port
    ok, closed, port = run(scenario())
    assert ok == checks.Outcome(True)
    assert closed == checks.Outcome(False, f"dial tcp 127.0.0.1:{port}: connect: connection refused")


def test_http_get_status_codes_and_headers():
    seen: list[bytes] = []

    async def handle(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        seen.append(request)
        code = b"200 OK" if request.startswith(b"GET /healthz ") else b"500 Internal Server Error"
        writer.write(b"HTTP/1.1 " + code + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        get = lambda path: checks.http_get(HostSockets(), None, host="127.0.0.1", port=port, path=path,  # noqa: E731
                                           scheme="HTTP", headers=[("Custom-Header", "Awesome")], timeout=1)
        results = await get("/healthz"), await get("/broken")
        server.close()
        await server.wait_closed()
        refused = await get("/healthz")
        return results, refused, port
    (ok, bad), refused, port = run(scenario())
    assert ok.ok and bad == checks.Outcome(False, "HTTP probe failed with statuscode: 500")
    assert not refused.ok and refused.message == (f'Get "http://127.0.0.1:{port}/healthz": dial tcp '
                                                  f'127.0.0.1:{port}: connect: connection refused')
    head = seen[0].decode().split("\r\n")
    assert head[0] == "GET /healthz HTTP/1.1"
    assert "Custom-Header: Awesome" in head and "User-Agent: kube-probe/1.30" in head


@pytest.mark.parametrize("status, ok", [(1, True), (2, False)])
def test_grpc_health_check_against_a_python_grpc_server(status, ok):
    requests: list[bytes] = []

    def check(request: bytes, context) -> bytes:
        requests.append(request)
        return bytes([0x08, status])

    async def scenario():
        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=None,
                                                         response_serializer=None)})
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            return await checks.grpc_health(HostSockets(), None, host="127.0.0.1", port=port, service="liveness",
                                            timeout=5)
        finally:
            await server.stop(None)
    outcome = run(scenario())
    assert outcome.ok is ok
    assert requests == [b"\x0a\x08liveness"]
    if not ok:
        assert outcome.message == 'service unhealthy (responded with "NOT_SERVING")'


def _lo_up() -> None:
    """ioctl(SIOCSIFFLAGS) IFF_UP on lo, in the calling thread's network namespace."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sH14s", b"lo", 0x1 | 0x8, b"")   # IFF_UP | IFF_LOOPBACK
        fcntl.ioctl(s.fileno(), 0x8914, ifreq)                  # SIOCSIFFLAGS
    finally:
        s.close()


def test_a_socket_made_in_a_pod_namespace_reaches_what_listens_only_there():
    if os.geteuid() != 0:
        pytest.skip("needs root (setns)")
    from agent.runtime.linux import syscalls
    port = free_port()
    ready, done = threading.Event(), threading.Event()
    where: dict[str, str] = {}

    def pod_namespace() -> None:
        # A namespace of this thread alone: a listener on its 127.0.0.1 that the node cannot see.
        syscalls.unshare(syscalls.CLONE_NEWNET)
        _lo_up()
        listener = socket.socket()
        listener.bind(("127.0.0.1", port))
        listener.listen()
        where["netns"] = f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/net"
        ready.set()
        done.wait(30)
        listener.close()

    thread = threading.Thread(target=pod_namespace)
    thread.start()
    try:
        assert ready.wait(10)
        sockets = checks.NetnsSockets()
        home = os.readlink("/proc/thread-self/ns/net")

        async def probe(netns):
            return await checks.tcp_socket(sockets, netns, host="127.0.0.1", port=port, timeout=2)
        calls = []
        setns = sockets._setns
        sockets._setns = lambda fd, kind: (calls.append(fd), setns(fd, kind))
        fds = len(os.listdir("/proc/self/fd"))
        inside = run(probe(where["netns"]))
        outside = run(probe(None))
        assert os.readlink("/proc/thread-self/ns/net") == home   # the caller is back home
        assert inside.ok and not outside.ok
        # A pod's probes share a setns pair (issue 10, the probe CPU budget): 3 probes, one pair.
        assert [run(probe(where["netns"])).ok for _ in range(2)] == [True, True]
        assert len(calls) == 2
        sockets.forget(where["netns"])
        assert len(os.listdir("/proc/self/fd")) <= fds   # the spare sockets and the namespace closed
    finally:
        done.set()
        thread.join()


def test_a_server_that_never_answers_times_out_with_kubelet_s_words_and_leaves_no_socket():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)   # accepted by the kernel, never answered
    port = listener.getsockname()[1]

    async def scenario():
        fds = len(os.listdir("/proc/self/fd"))
        http = await checks.http_get(HostSockets(), None, host="127.0.0.1", port=port, path="/healthz",
                                     scheme="HTTP", headers=[], timeout=0.3)
        task = asyncio.create_task(checks.http_get(HostSockets(), None, host="127.0.0.1", port=port, path="/",
                                                   scheme="HTTP", headers=[], timeout=30))
        await asyncio.sleep(0.1)
        task.cancel()   # a probe forgotten mid-flight (its container stopped)
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
        return http, len(os.listdir("/proc/self/fd")) - fds
    try:
        http, leaked = run(scenario())
    finally:
        listener.close()
    assert http == checks.Outcome(False, f'Get "http://127.0.0.1:{port}/healthz": context deadline exceeded '
                                         f'(Client.Timeout exceeded while awaiting headers)')
    assert leaked <= 0


def test_probes_through_one_shared_epoll_answer_as_alone_and_leave_nothing_behind():
    """The agent's probes go through checks.Exchanges (one epoll set watched
    as one reader, timeouts in shared buckets): many at once, answered,
    refused and unanswered, give each its own outcome; close() leaves no fd."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)   # accepted by the kernel, never answered
    silent = listener.getsockname()[1]
    refused_port = free_port()

    async def handle(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 " + (b"204 No Content" if b"/ok " in request else b"503 Unavailable") + b"\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        fds = len(os.listdir("/proc/self/fd"))
        engine = checks.Exchanges(asyncio.get_running_loop())

        def http(p, path, timeout=5.0):
            return checks.http_get(HostSockets(), None, host="127.0.0.1", port=p, path=path, scheme="HTTP",
                                   headers=[], timeout=timeout, exchanges=engine)
        outcomes = await asyncio.gather(
            *[http(port, "/ok") for _ in range(20)], *[http(port, "/bad") for _ in range(5)],
            http(refused_port, "/ok"), http(silent, "/ok", timeout=0.3),
            checks.tcp_socket(HostSockets(), None, host="127.0.0.1", port=port, timeout=5, exchanges=engine),
            checks.tcp_socket(HostSockets(), None, host="127.0.0.1", port=refused_port, timeout=5,
                              exchanges=engine))
        in_flight = asyncio.ensure_future(http(silent, "/", timeout=30))   # still waiting at close()
        await asyncio.sleep(0.05)
        engine.close()
        await asyncio.gather(in_flight, return_exceptions=True)
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)
        return port, outcomes, in_flight, len(os.listdir("/proc/self/fd")) - fds
    try:
        port, outcomes, in_flight, leaked = run(scenario())
    finally:
        listener.close()
    assert outcomes[:20] == [checks.Outcome(True)] * 20
    assert outcomes[20:25] == [checks.Outcome(False, "HTTP probe failed with statuscode: 503")] * 5
    assert outcomes[25] == checks.Outcome(False, f'Get "http://127.0.0.1:{refused_port}/ok": dial tcp '
                                                 f'127.0.0.1:{refused_port}: connect: connection refused')
    assert outcomes[26] == checks.Outcome(False, f'Get "http://127.0.0.1:{silent}/ok": context deadline exceeded '
                                                 f'(Client.Timeout exceeded while awaiting headers)')
    assert outcomes[27:] == [checks.Outcome(True), checks.Outcome(
        False, f"dial tcp 127.0.0.1:{refused_port}: connect: connection refused")]
    assert in_flight.cancelled()
    assert leaked <= 0
