"""SPDY/3.1 framing as kubectl's port-forward writes it (the end-to-end check
against kubectl itself is tests/e2e/test_port_forward.py): frames split
anywhere across WebSocket messages, header blocks sharing one compression
context, and a peer's malformed bytes named."""
from __future__ import annotations

import struct

import pytest

from controlplane.rest import spdy


def _trickle(codec: spdy.Codec, data: bytes, size: int) -> list[spdy.Frame]:
    frames = []
    for i in range(0, len(data), size):
        frames += codec.feed(data[i:i + size])
    return frames


def test_dictionary_is_spdy3s():
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\0\0\0\x07options\0\0\0\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_streams_as_kubectl_opens_them_parse_wherever_the_bytes_split(size):
    client, server = spdy.Codec(), spdy.Codec()
    wire = b"".join([
        client.syn_stream(1, {"streamtype": "error", "port": "8080", "requestid": "0"}),
        *client.data(1, fin=True),                       # kubectl half-closes the error stream at once
        client.syn_stream(3, {"streamtype": "data", "port": "8080", "requestid": "0"}),
        *client.data(3, b"GET / HTTP/1.0\r\n\r\n"),
        client.ping(1),
        client.rst_stream(3, spdy.RST_CANCEL),
        client.goaway(3),
    ])
    frames = _trickle(server, wire, size)
    assert [(f.control, f.type, f.stream_id, f.fin) for f in frames] == [
        (True, spdy.SYN_STREAM, 1, False), (False, 0, 1, True), (True, spdy.SYN_STREAM, 3, False),
        (False, 0, 3, False), (True, spdy.PING, 0, False), (True, spdy.RST_STREAM, 3, False),
        (True, spdy.GOAWAY, 3, False)]
    assert frames[0].headers == {"streamtype": ["error"], "port": ["8080"], "requestid": ["0"]}
    assert frames[2].headers["streamtype"] == ["data"]     # the second block, same zlib context
    assert frames[3].data == b"GET / HTTP/1.0\r\n\r\n"
    assert frames[4].ping_id == 1 and frames[5].status == spdy.RST_CANCEL


def test_what_the_server_writes_reads_back():
    server, client = spdy.Codec(), spdy.Codec()
    payload = bytes(range(256)) * 300                   # over MAX_DATA: several frames, FIN on the last
    wire = server.syn_reply(1) + server.syn_reply(3) + b"".join(server.data(3, payload, fin=True))
    frames = client.feed(wire)
    assert [(f.type, f.stream_id, f.headers) for f in frames[:2]] == [(spdy.SYN_REPLY, 1, {}),
                                                                     (spdy.SYN_REPLY, 3, {})]
    data = frames[2:]
    assert len(data) == 3 and b"".join(f.data for f in data) == payload
    assert [f.fin for f in data] == [False, False, True]
    # A control frame: C bit, version 3, type; PING echoed byte for byte.
    assert server.ping(7) == struct.pack(">HHII", 0x8003, spdy.PING, 4, 7)


def test_a_frame_of_another_version_or_a_broken_header_block_is_named():
    with pytest.raises(spdy.ProtocolError, match="SPDY version 2: only 3"):
        spdy.Codec().feed(struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\0\0\0\1")
    garbage = struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, 14) + b"\0\0\0\1\0\0\0\0\0\0" + b"junk"
    with pytest.raises(spdy.ProtocolError, match="header block"):
        spdy.Codec().feed(garbage)
