"""The guestbook's frontend: GET /?cmd=set&key=K&value=V writes through the
redis leader's Service, GET /?cmd=get&key=K reads from the followers' Service.

Standard library only (it runs on the debian-python base, which has no pip),
so it speaks redis' protocol (RESP) over a socket itself. The Services are
found by their DNS names, as the classic guestbook's GET_HOSTS_FROM=dns does.
"""
import json
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PORT = int(os.environ.get("PORT", "80"))
LEADER = (os.environ.get("REDIS_LEADER", "redis-leader"), 6379)
FOLLOWER = (os.environ.get("REDIS_FOLLOWER", "redis-follower"), 6379)


class RedisError(Exception):
    pass


def _encode(*args: str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _reply(f):
    """One RESP reply from the file `f`: a str, int, None (nil) or list."""
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise RedisError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_reply(f) for _ in range(n)]
    raise RedisError(f"unexpected reply {line!r}")


def redis(address: tuple[str, int], *args: str):
    """Send one command to the redis at `address` and return its reply."""
    with socket.create_connection(address, timeout=5) as s, s.makefile("rb") as f:
        s.sendall(_encode(*args))
        return _reply(f)


class Guestbook(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        cmd, key = query.get("cmd"), query.get("key", "guestbook")
        try:
            if cmd == "set":
                answer = {"message": redis(LEADER, "SET", key, query.get("value", ""))}
            elif cmd == "get":
                answer = {"data": redis(FOLLOWER, "GET", key)}
            else:
                answer = {"hostname": socket.gethostname()}
            status = 200
        except (OSError, RedisError) as exc:
            answer, status = {"error": str(exc)}, 503
        body = (json.dumps(answer) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args) -> None:
        print(f"{self.client_address[0]} {fmt % args}", flush=True)


if __name__ == "__main__":
    # PID 1 of its container: without a handler SIGTERM would wait out the grace period.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    print(f"listening on 0.0.0.0:{PORT}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Guestbook).serve_forever()
