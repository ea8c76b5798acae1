"""The guestbook example's frontend (manifests/examples/guestbook/app.py) against a
small RESP server on loopback: the protocol it speaks itself, writes going to the
leader, reads to the follower, and a redis error or a dead redis as a 503.
(tests/e2e/test_guestbook.py runs it against real redis on three nodes.)"""
from __future__ import annotations

import importlib.util
import json
import socketserver
import threading
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "guestbook" / "app.py"


def _load_app():
    spec = importlib.util.spec_from_file_location("guestbook_app", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeRedis(socketserver.ThreadingTCPServer):
    """SET/GET/LRANGE over RESP, from a dict; records the commands it got."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *, read_only: bool = False):
        self.data: dict[str, object] = {"list": ["a", "b"]}
        self.commands: list[list[str]] = []
        self.read_only = read_only
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        header = self.rfile.readline()
        args = []
        for _ in range(int(header[1:-2])):
            n = int(self.rfile.readline()[1:-2])
            args.append(self.rfile.read(n + 2)[:-2].decode())
        self.server.commands.append(args)
        cmd = args[0].upper()
        if cmd == "SET" and self.server.read_only:
            self.wfile.write(b"-READONLY You can't write against a read only replica.\r\n")
        elif cmd == "SET":
            self.server.data[args[1]] = args[2]
            self.wfile.write(b"+OK\r\n")
        elif cmd == "GET":
            value = self.server.data.get(args[1])
            self.wfile.write(b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value.encode()), value.encode()))
        elif cmd == "LRANGE":
            items = self.server.data[args[1]]
            self.wfile.write(b"*%d\r\n" % len(items) + b"".join(b"$1\r\n%s\r\n" % i.encode() for i in items))


@pytest.fixture
def servers():
    made = [FakeRedis(), FakeRedis(read_only=True)]
    for s in made:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield made
    for s in made:
        s.shutdown()
        s.server_close()


def test_resp_round_trips(servers):
    app = _load_app()
    leader, _ = servers
    address = leader.server_address
    assert app.redis(address, "SET", "k", "välue with spaces\r\n") == "OK"
    assert app.redis(address, "GET", "k") == "välue with spaces\r\n"
    assert app.redis(address, "GET", "missing") is None
    assert app.redis(address, "LRANGE", "list", "0", "-1") == ["a", "b"]
    assert leader.commands[0] == ["SET", "k", "välue with spaces\r\n"]


def test_frontend_writes_to_the_leader_and_reads_from_the_follower(servers):
    app = _load_app()
    leader, follower = servers
    app.LEADER, app.FOLLOWER = leader.server_address, follower.server_address
    http = ThreadingHTTPServer(("127.0.0.1", 0), app.Guestbook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    base = f"http://127.0.0.1:{http.server_address[1]}/"

    def get(query: str) -> tuple[int, dict]:
        try:
            with opener.open(base + query, timeout=5) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    try:
        assert get("?cmd=set&key=messages&value=hi%20there") == (200, {"message": "OK"})
        assert leader.data["messages"] == "hi there"
        assert get("?cmd=get&key=messages") == (200, {"data": None})   # the follower has not replicated it
        follower.data["messages"] = "hi there"
        assert get("?cmd=get&key=messages") == (200, {"data": "hi there"})
        assert [c[0] for c in follower.commands] == ["GET", "GET"]
        # A redis error and an unreachable redis answer 503 with the reason.
        app.LEADER = follower.server_address
        status, body = get("?cmd=set&key=k&value=v")
        assert status == 503 and body["error"].startswith("READONLY"), body
        follower.shutdown()
        follower.server_close()
        app.FOLLOWER = follower.server_address
        status, body = get("?cmd=get&key=k")
        assert status == 503 and "refused" in body["error"].lower(), body
    finally:
        http.shutdown()
        http.server_close()
