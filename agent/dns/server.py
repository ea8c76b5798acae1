"""The node's DNS server: UDP and TCP on one address, in the agent's event loop.

    datagram / TCP message ──► parse (garbage: dropped, or FORMERR when the
        header is readable) ──► Resolver.resolve ──► the cluster zone's answer
                                     │ None (not ours)
                                     ▼
        upstreams, in order (`--dns-upstream`), over the client's transport,
        FORWARD_TIMEOUT each; all failed: SERVFAIL; none configured: REFUSED

The zone's answers are kept by the query's bytes (less its ID) for at most
CACHE_SECONDS (the records' TTL) and only while the view's `generation` is
the same, so a Service or endpoint change is answered at the next query: a
repeated question — what ndots:5 and the search path make of every lookup —
is answered without parsing or rendering a message.

A UDP answer larger than the client's limit (512 bytes, or its EDNS payload
size) is sent truncated (TC) with no records, so the client asks again over
TCP, as RFC 1035 says. Nothing here blocks: every answer of the zone comes
from the resolver's view (the informer caches), and forwarding is awaited.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode

from agent.dns.resolver import Resolver

log = logging.getLogger(__name__)

FORWARD_TIMEOUT = 2.0
TCP_IDLE_SECONDS = 10.0
CACHE_SECONDS = 5.0
CACHE_ENTRIES = 10000


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int = 53

    @classmethod
    def parse(cls, text: str) -> "Upstream":
        """"IP" or "IP:PORT" ("[v6]:PORT")."""
        text = text.strip()
        if text.startswith("["):
            host, _, port = text[1:].partition("]:")
            return cls(host, int(port) if port else 53)
        if text.count(":") == 1:
            host, port = text.split(":")
            return cls(host, int(port))
        return cls(text)


class DnsServer:
    def __init__(self, *, resolver: Resolver, upstreams: tuple[Upstream, ...] = (),
                 forward_timeout: float = FORWARD_TIMEOUT) -> None:
        self.resolver = resolver
        self.upstreams = upstreams
        self.forward_timeout = forward_timeout
        self._cache: dict[tuple[bytes, bool], tuple[int, float, bytes]] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self.address: tuple[str, int] | None = None

    async def start(self, host: str, port: int = 53) -> None:
        """Bind UDP and TCP on host:port (port 0: one free port for both, for tests)."""
        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(self._serve_tcp, host=host, port=port, reuse_address=True)
        bound = self._tcp.sockets[0].getsockname()[1]
        try:
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(host, bound),
                                                               family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        except OSError:
            self._tcp.close()
            raise
        self.address = (host, bound)
        log.info("cluster DNS serving on %s:%d (udp, tcp)", host, bound)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None

    # ------------------------------------------------------------ answering

    async def answer(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The response's bytes for a query's bytes; None: no answer (unparseable)."""
        out = self.answer_now(wire, tcp=tcp)
        if isinstance(out, dns.message.Message):
            return await self._forward(out, wire, tcp=tcp)
        return out

    def answer_now(self, wire: bytes, *, tcp: bool) -> bytes | dns.message.Message | None:
        """The response's bytes, None (no answer), or the parsed query when it is to be
        forwarded: everything but forwarding is synchronous, so a datagram of the
        cluster zone is answered in its callback, with no task."""
        key = (wire[2:], tcp)
        cached = self._cache.get(key)
        generation = self.resolver.generation
        now = asyncio.get_running_loop().time()
        if cached is not None and cached[0] == generation and cached[1] > now:
            return wire[:2] + cached[2][2:]
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _formerr(wire)
        if query.flags & dns.flags.QR:
            return None   # a response sent to us: never answer one (no loops)
        try:
            response = self.resolver.resolve(query)
        except Exception:
            log.exception("cluster DNS: answering %s failed", query.question)
            response = _rcode(query, dns.rcode.SERVFAIL)
        if response is None:
            return query
        out = _to_wire(query, response, tcp=tcp)
        if response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = (generation, now + CACHE_SECONDS, out)
        return out

    async def _forward(self, query: dns.message.Message, wire: bytes, *, tcp: bool) -> bytes:
        if not self.upstreams:
            return _to_wire(query, _rcode(query, dns.rcode.REFUSED), tcp=tcp)
        for upstream in self.upstreams:
            try:
                if tcp:
                    reply = await dns.asyncquery.tcp(query, upstream.host, port=upstream.port,
                                                     timeout=self.forward_timeout)
                else:
                    reply = await dns.asyncquery.udp(query, upstream.host, port=upstream.port,
                                                     timeout=self.forward_timeout, ignore_trailing=True)
                return reply.to_wire()
            except (dns.exception.DNSException, OSError, EOFError) as exc:
                log.debug("upstream %s:%d failed for %s: %s", upstream.host, upstream.port, query.question, exc)
        return _to_wire(query, _rcode(query, dns.rcode.SERVFAIL), tcp=tcp)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_SECONDS):
                    head = await reader.readexactly(2)
                async with asyncio.timeout(TCP_IDLE_SECONDS):
                    wire = await reader.readexactly(struct.unpack("!H", head)[0])
                out = await self.answer(wire, tcp=True)
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self._pending: set[asyncio.Task] = set()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        out = self.server.answer_now(data, tcp=False)
        if isinstance(out, dns.message.Message):   # forwarded: the one path that waits
            task = asyncio.ensure_future(self._forward(out, data, addr))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        elif out is not None:
            self._send(out, addr)

    async def _forward(self, query: dns.message.Message, data: bytes, addr) -> None:
        self._send(await self.server._forward(query, data, tcp=False), addr)

    def _send(self, out: bytes, addr) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)

    def connection_lost(self, exc) -> None:
        for task in self._pending:
            task.cancel()


def _rcode(query: dns.message.Message, rcode: int) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    return response


def _to_wire(query: dns.message.Message, response: dns.message.Message, *, tcp: bool) -> bytes:
    limit = 65535 if tcp else max(512, query.payload if query.edns >= 0 else 512)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        short = dns.message.make_response(query)
        short.set_rcode(response.rcode())
        short.flags |= dns.flags.TC | (response.flags & dns.flags.AA)
        return short.to_wire(max_size=limit)


def _formerr(wire: bytes) -> bytes | None:
    """FORMERR echoing the query's id, when there is a header to echo."""
    if len(wire) < 12:
        return None
    qid, flags = struct.unpack("!HH", wire[:4])
    if flags & 0x8000:
        return None
    return struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x7900) | dns.rcode.FORMERR, 0, 0, 0, 0)
