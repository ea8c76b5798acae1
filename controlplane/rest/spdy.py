"""The server side of SPDY/3.1 as Kubernetes' streaming protocols use it
(moby/spdystream under k8s.io/apimachinery's httpstream/spdy): enough to
serve kubectl's port-forward tunnelled in a WebSocket
(`SPDY/3.1+portforward.k8s.io`, client-go's tunneling dialer).

The tunnel is a byte stream: the client's binary WebSocket messages,
concatenated, are the SPDY connection's bytes (a frame may span messages or
share one); each frame the server writes goes out as one binary message.

Frames (SPDY/3, big-endian):
  control  1|version(15)=3 | type(16) | flags(8) | length(24) | payload
  data     0|stream-id(31) | flags(8) | length(24) | payload     (flag 0x01: FIN)
Control types served: SYN_STREAM(1) — stream-id, associated-id, priority,
slot, header block — answered with SYN_REPLY(2) — stream-id, header block;
RST_STREAM(3) — stream-id, status; PING(6) — id, echoed back; GOAWAY(7);
SETTINGS(4), HEADERS(8) and WINDOW_UPDATE(9) are read and ignored, as
spdystream does (it keeps no flow-control window).
A header block is zlib-compressed with SPDY/3's dictionary, one compression
context per direction for the whole connection (each block ends with a sync
flush): count(32), then per header name-length(32) name value-length(32)
value, names lowercase, several values joined by NUL.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_REFUSED_STREAM, RST_CANCEL = 1, 2, 3, 5
MAX_DATA = 32 * 1024   # per DATA frame written (the format allows 2^24 - 1)


def _dictionary() -> bytes:
    """SPDY/3's header-compression dictionary (draft 3, section 2.6.10.1):
    length-prefixed common header names and values, then a run of status
    lines, dates and media types."""
    words = ("options head post put delete trace accept accept-charset accept-encoding accept-language "
             "accept-ranges age allow authorization cache-control connection content-base content-encoding "
             "content-language content-length content-location content-md5 content-range content-type date etag "
             "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
             "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
             "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning "
             "www-authenticate method get status").split() + ["200 OK", "version", "HTTP/1.1", "url", "public",
                                                             "set-cookie", "keep-alive", "origin"]
    tail = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
            "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
            "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
            "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
            "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
            "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + tail.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3 as spdystream writes it."""


@dataclass
class Frame:
    """One frame read: `control` with `type`, else a DATA frame of `stream_id`."""
    control: bool
    flags: int
    stream_id: int = 0
    type: int = 0
    data: bytes = b""
    headers: dict[str, list[str]] = field(default_factory=dict)
    status: int = 0          # RST_STREAM, GOAWAY
    ping_id: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class Codec:
    """A connection's framing both ways: feed() the bytes read, frames() out;
    the *_frame() methods give the bytes to write."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    # -- reading
    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                break
            head, payload = bytes(self._buffer[:8]), bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            frames.append(self._parse(head, payload))
        return frames

    def _parse(self, head: bytes, payload: bytes) -> Frame:
        word, flags = struct.unpack(">I", head[:4])[0], head[4]
        if not word & 0x8000_0000:
            return Frame(control=False, flags=flags, stream_id=word & 0x7FFF_FFFF, data=payload)
        version, kind = (word >> 16) & 0x7FFF, word & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}: only {VERSION} is spoken")
        frame = Frame(control=True, flags=flags, type=kind)
        if kind in (SYN_STREAM, SYN_REPLY, HEADERS, RST_STREAM, WINDOW_UPDATE):
            if len(payload) < 4:
                raise ProtocolError(f"control frame {kind}: {len(payload)} bytes, too short")
            frame.stream_id = struct.unpack(">I", payload[:4])[0] & 0x7FFF_FFFF
        if kind == SYN_STREAM:
            if len(payload) < 10:
                raise ProtocolError("SYN_STREAM shorter than 10 bytes")
            frame.headers = self._headers(payload[10:])
        elif kind in (SYN_REPLY, HEADERS):
            frame.headers = self._headers(payload[4:])
        elif kind == RST_STREAM and len(payload) >= 8:
            frame.status = struct.unpack(">I", payload[4:8])[0]
        elif kind == PING and len(payload) >= 4:
            frame.ping_id = struct.unpack(">I", payload[:4])[0]
        elif kind == GOAWAY and len(payload) >= 8:
            frame.stream_id, frame.status = struct.unpack(">II", payload[:8])
        return frame

    def _headers(self, block: bytes) -> dict[str, list[str]]:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as exc:
            raise ProtocolError(f"header block: {exc}") from None
        try:
            (count,), at = struct.unpack_from(">I", raw, 0), 4
            headers: dict[str, list[str]] = {}
            for _ in range(count):
                (n,) = struct.unpack_from(">I", raw, at)
                name = raw[at + 4:at + 4 + n].decode()
                at += 4 + n
                (n,) = struct.unpack_from(">I", raw, at)
                value = raw[at + 4:at + 4 + n].decode()
                at += 4 + n
                headers.setdefault(name.lower(), []).extend(value.split("\0"))
        except (struct.error, UnicodeDecodeError) as exc:
            raise ProtocolError(f"header block: {exc}") from None
        return headers

    # -- writing
    def _block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers)) + b"".join(
            struct.pack(">I", len(k)) + k.lower().encode() + struct.pack(">I", len(v.encode())) + v.encode()
            for k, v in headers.items())
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None, *, fin: bool = False) -> bytes:
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0,
                             struct.pack(">I", stream_id) + self._block(headers or {}))

    def syn_stream(self, stream_id: int, headers: dict[str, str], *, fin: bool = False) -> bytes:
        """(What a client writes; the tests speak as kubectl with it.)"""
        return self._control(SYN_STREAM, FLAG_FIN if fin else 0,
                             struct.pack(">IIBB", stream_id, 0, 0, 0) + self._block(headers))

    def rst_stream(self, stream_id: int, status: int) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_stream_id: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))

    @staticmethod
    def data(stream_id: int, data: bytes = b"", *, fin: bool = False) -> list[bytes]:
        """DATA frames carrying data (at most MAX_DATA each); fin on the last."""
        chunks = [data[i:i + MAX_DATA] for i in range(0, len(data), MAX_DATA)] or [b""]
        return [struct.pack(">II", stream_id, ((FLAG_FIN if fin and i == len(chunks) - 1 else 0) << 24) | len(c)) + c
                for i, c in enumerate(chunks)]
