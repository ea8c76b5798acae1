"""The node's image store served read-only over the OCI Distribution API (decision 33).

    GET|HEAD /v2/                                   {} (the API version check)
    GET|HEAD /v2/<name>/manifests/<tag|digest>      the manifest, Docker-Content-Digest
    GET|HEAD /v2/<name>/blobs/<digest>              the blob; Range: bytes=N- / N-M (206)

<name> is the image's normalized repository with its registry host, as
`docker.io/library/my-web-server` (a pod's `my-web-server:v1` is
`docker.io/library/my-web-server:v1`), so two registries' images of one path
stay apart. A blob is served only by a repository whose image holds it.
Errors are the spec's JSON body, {"errors": [{"code", "message", "detail"}]}.
Peers (agent/images/peerfetch.py) are the clients; nothing is written here.

Secure mode: the same server is given an ssl.SSLContext that demands a
client certificate of the cluster CA (ssl_context()), as the agent's gRPC
service does; a peer node presents its node certificate.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from agent.images.errors import ImageError, ImageNotFound, InvalidReference
from agent.images.reference import parse_reference
from agent.images.store import MT_MANIFEST, ImageStore

log = logging.getLogger(__name__)

DEFAULT_PORT = 10251
API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+|__)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_PATH = re.compile(r"^/v2/(?P<name>.+)/(?P<what>manifests|blobs)/(?P<ref>[^/]+)$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
REASONS = {200: "OK", 206: "Partial Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           416: "Range Not Satisfiable", 500: "Internal Server Error"}


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: Path | None = None          # the body is this file's bytes [start, end)
    start: int = 0
    end: int = 0


def _error(status: int, code: str, message: str, detail: object = None) -> Response:
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": detail or {}}]}).encode()
    return Response(status, {**API_VERSION, "Content-Type": "application/json"}, body)


class DistributionApi:
    """The handlers, apart from the HTTP plumbing (tests call `handle` directly)."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store

    def handle(self, method: str, target: str, headers: dict[str, str]) -> Response:
        """`headers`' names lower case. HEAD answers as GET without the body (the caller drops it)."""
        path = urllib.parse.urlsplit(target).path
        if method not in ("GET", "HEAD"):
            return _error(405, "UNSUPPORTED", f"{method} is not served: this node's registry is read-only "
                                              f"(put images into the cluster with `skiff image load`)")
        if path in ("/v2/", "/v2"):
            return Response(200, {**API_VERSION, "Content-Type": "application/json"}, b"{}")
        m = _PATH.match(path)
        if m is None:
            return _error(404, "NOT_FOUND", f"{path} is not an OCI distribution API path")
        name = urllib.parse.unquote(m["name"])
        if not _NAME.match(name):
            return _error(400, "NAME_INVALID", f"invalid repository name {name!r}")
        try:
            if m["what"] == "manifests":
                return self.manifest(name, urllib.parse.unquote(m["ref"]))
            return self.blob(name, urllib.parse.unquote(m["ref"]), headers.get("range", ""))
        except _Refusal as exc:
            return exc.response()
        except ImageError as exc:
            return _error(404, "MANIFEST_UNKNOWN" if m["what"] == "manifests" else "BLOB_UNKNOWN", str(exc))

    def _repository(self, name: str) -> list:
        return [r for r in self.store.list() if r.reference and parse_reference(r.reference).name == name]

    def manifest(self, name: str, ref: str) -> Response:
        text = f"{name}@{ref}" if ref.startswith("sha256:") else f"{name}:{ref}"
        try:
            parsed = parse_reference(text)
        except InvalidReference as exc:
            raise _Refusal(400, "MANIFEST_INVALID" if ref.startswith("sha256:") else "TAG_INVALID", str(exc)) from None
        if parsed.digest:
            # By digest: only a manifest this repository holds (under one of its tags).
            if parsed.digest not in {r.manifest_digest for r in self._repository(name)}:
                raise _Refusal(404, "MANIFEST_UNKNOWN", f"manifest unknown: {name}@{ref} is not on this node",
                               {"name": name, "digest": ref})
            digest = parsed.digest
        else:
            try:
                digest, _ = self.store._find_manifest(str(parsed))
            except ImageNotFound:
                raise _Refusal(404, "MANIFEST_UNKNOWN", f"manifest unknown: {name}:{ref} is not on this node",
                               {"name": name, "tag": ref}) from None
        body = self.store.read_blob(digest)
        media_type = json.loads(body).get("mediaType", MT_MANIFEST)
        return Response(200, {**API_VERSION, "Docker-Content-Digest": digest, "Content-Type": media_type}, body)

    def _repository_blobs(self, name: str) -> set[str]:
        out: set[str] = set()
        for row in self._repository(name):
            try:
                manifest = self.store.read_json(row.manifest_digest)
            except ImageError:
                continue
            out.add(manifest["config"]["digest"])
            out.update(layer["digest"] for layer in manifest.get("layers", []))
        return out

    def blob(self, name: str, digest: str, range_header: str) -> Response:
        if not _DIGEST.match(digest):
            raise _Refusal(400, "DIGEST_INVALID", f"invalid digest {digest!r} (want sha256:<64 hex>)")
        path = self.store.blob_path(digest)
        if digest not in self._repository_blobs(name) or not path.exists():
            raise _Refusal(404, "BLOB_UNKNOWN", f"blob unknown to repository {name}: {digest}", {"digest": digest})
        size = path.stat().st_size
        headers = {**API_VERSION, "Docker-Content-Digest": digest, "Content-Type": "application/octet-stream",
                   "Accept-Ranges": "bytes"}
        if not range_header:
            return Response(200, headers, file=path, start=0, end=size)
        m = _RANGE.match(range_header.strip())
        if m is None or (not m[1] and not m[2]):
            return _error(416, "RANGE_INVALID", f"unsupported Range {range_header!r} (want bytes=START-[END])")
        if m[1]:
            start = int(m[1])
            end = min(int(m[2]) + 1, size) if m[2] else size
        else:   # bytes=-N: the last N
            start, end = max(size - int(m[2]), 0), size
        if start >= size or end <= start:
            out = _error(416, "RANGE_INVALID", f"Range {range_header!r} is outside the blob ({size} bytes)")
            out.headers["Content-Range"] = f"bytes */{size}"
            return out
        return Response(206, {**headers, "Content-Range": f"bytes {start}-{end - 1}/{size}"}, file=path,
                        start=start, end=end)


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail

    def response(self) -> Response:
        return _error(self.status, self.code, self.message, self.detail)


def ssl_context(*, ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """Secure mode: serve with the node's certificate; answer only clients with a certificate
    of the cluster CA (peer nodes, the control plane)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca_file)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


MAX_HEADER_BYTES = 16384
CHUNK = 1 << 20


async def _serve_connection(api: DistributionApi, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
    """HTTP/1.1, keep-alive, one request at a time (stdlib only: aiohttp would cost the
    resident agent ~15 MiB; decision 33)."""
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ")
            except ValueError:
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
            if headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers:
                resp = _error(405, "UNSUPPORTED", "this node's registry is read-only: no request bodies")
                headers["connection"] = "close"
            else:
                try:
                    resp = await asyncio.to_thread(api.handle, method, target, headers)
                except Exception as exc:   # noqa: BLE001 - the client hears why, the agent goes on
                    log.exception("registry: %s %s failed", method, target)
                    resp = _error(500, "UNKNOWN", f"{type(exc).__name__}: {exc}")
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            length = (resp.end - resp.start) if resp.file is not None else len(resp.body)
            out = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, '')}", f"Content-Length: {length}",
                   *(f"{k}: {v}" for k, v in resp.headers.items())]
            if close:
                out.append("Connection: close")
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
            if method != "HEAD":
                if resp.file is None:
                    writer.write(resp.body)
                else:
                    with open(resp.file, "rb") as f:
                        f.seek(resp.start)
                        left = length
                        while left > 0:
                            chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
                            if not chunk:
                                break
                            writer.write(chunk)
                            left -= len(chunk)
                            await writer.drain()
            await writer.drain()
            if close:
                return
    except (ConnectionError, ssl.SSLError) as exc:
        log.debug("registry connection ended: %s", exc)
    finally:
        writer.close()


class Server:
    def __init__(self, server: asyncio.base_events.Server) -> None:
        self.server = server

    async def cleanup(self) -> None:
        self.server.close()
        if hasattr(self.server, "close_clients"):   # 3.13: keep-alive connections too
            self.server.close_clients()
        try:
            await asyncio.wait_for(self.server.wait_closed(), timeout=2)
        except asyncio.TimeoutError:
            pass


async def serve(*, store: ImageStore, host: str, port: int,
                tls: ssl.SSLContext | None = None) -> tuple[Server, int]:
    """Start serving `store`; returns the server (cleanup() stops it) and the port bound."""
    api = DistributionApi(store)
    try:
        server = await asyncio.start_server(lambda r, w: _serve_connection(api, r, w), host, port, ssl=tls,
                                            limit=MAX_HEADER_BYTES)
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port} (--registry-port): {exc.strerror or exc}") from None
    return Server(server), server.sockets[0].getsockname()[1]
