"""The DNS server on loopback: real UDP and TCP sockets, queries by dnspython's client."""
from __future__ import annotations

import asyncio
import socket

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode

from agent.dns import DnsServer, EndpointInfo, Resolver, ServiceInfo, StaticView, Upstream

WEB = ServiceInfo("default", "web", cluster_ips=("10.96.0.20",))
MANY = ServiceInfo("default", "many", cluster_ips=("None",))
MANY_ENDPOINTS = [EndpointInfo((f"10.244.{i // 200}.{i % 200 + 2}",)) for i in range(100)]


def _server(upstreams=()) -> DnsServer:
    view = StaticView(services=[WEB, MANY], endpoint_lists={("default", "many"): MANY_ENDPOINTS})
    return DnsServer(resolver=Resolver(view=view), upstreams=tuple(upstreams), forward_timeout=1.0)


def run(scenario) -> None:
    async def wrapped():
        server = _server()
        await server.start("127.0.0.1", 0)
        try:
            await scenario(server, *server.address)
        finally:
            await server.stop()
    asyncio.run(wrapped())


def test_a_service_over_udp_and_tcp():
    async def scenario(server, host, port):
        query = dns.message.make_query("web.default.svc.cluster.local", "A")
        for send in (dns.asyncquery.udp, dns.asyncquery.tcp):
            response = await send(query, host, port=port, timeout=5)
            assert response.rcode() == dns.rcode.NOERROR
            assert [r.to_text() for r in response.answer[0]] == ["10.96.0.20"]
    run(scenario)


def test_nxdomain_over_the_wire():
    async def scenario(server, host, port):
        response = await dns.asyncquery.udp(dns.message.make_query("nope.default.svc.cluster.local", "A"),
                                            host, port=port, timeout=5)
        assert response.rcode() == dns.rcode.NXDOMAIN
        assert response.authority[0].name.to_text() == "cluster.local."
    run(scenario)


def test_a_large_answer_is_truncated_over_udp_and_whole_over_tcp():
    async def scenario(server, host, port):
        query = dns.message.make_query("many.default.svc.cluster.local", "A", use_edns=False)
        udp = await dns.asyncquery.udp(query, host, port=port, timeout=5, raise_on_truncation=False)
        assert udp.flags & dns.flags.TC and udp.answer == []
        tcp = await dns.asyncquery.tcp(query, host, port=port, timeout=5)
        assert len(tcp.answer[0]) == 100
    run(scenario)


def test_other_names_without_upstreams_are_refused_at_once():
    async def scenario(server, host, port):
        response = await dns.asyncquery.udp(dns.message.make_query("example.com", "A"), host, port=port, timeout=5)
        assert response.rcode() == dns.rcode.REFUSED
    run(scenario)


def test_garbage_gets_formerr_or_nothing_and_the_server_goes_on():
    async def scenario(server, host, port):
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            await loop.sock_sendto(sock, b"\x12\x34\x01\x00" + b"\xff" * 20, (host, port))
            reply = await asyncio.wait_for(loop.sock_recv(sock, 512), 5)
            assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR
            await loop.sock_sendto(sock, b"\x00", (host, port))   # too short for a header: no answer
        finally:
            sock.close()
        response = await dns.asyncquery.udp(dns.message.make_query("web.default.svc.cluster.local", "A"),
                                            host, port=port, timeout=5)
        assert response.rcode() == dns.rcode.NOERROR
    run(scenario)


def test_other_names_are_forwarded_to_the_first_upstream_that_answers():
    """An upstream on loopback answers example.com; a dead one before it is skipped (SERVFAIL when all fail)."""
    async def scenario():
        upstream_view = StaticView(services=[ServiceInfo("x", "y", cluster_ips=("10.0.0.1",))])
        upstream = DnsServer(resolver=_FixedResolver(upstream_view))
        await upstream.start("127.0.0.1", 0)
        dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # bound, never answers
        dead.bind(("127.0.0.1", 0))
        server = _server(upstreams=[Upstream("127.0.0.1", dead.getsockname()[1]),
                                    Upstream("127.0.0.1", upstream.address[1])])
        await server.start("127.0.0.1", 0)
        try:
            query = dns.message.make_query("example.com", "A")
            for send in (dns.asyncquery.udp, dns.asyncquery.tcp):
                response = await send(query, "127.0.0.1", port=server.address[1], timeout=10)
                assert [r.to_text() for r in response.answer[0]] == ["192.0.2.80"]
            await upstream.stop()
            response = await dns.asyncquery.udp(query, "127.0.0.1", port=server.address[1], timeout=10)
            assert response.rcode() == dns.rcode.SERVFAIL
        finally:
            await server.stop()
            await upstream.stop()
            dead.close()
    asyncio.run(scenario())


def test_a_repeated_question_is_answered_with_its_own_id_and_a_change_at_once():
    async def scenario():
        view = StaticView(services=[WEB])
        server = DnsServer(resolver=Resolver(view=view))
        await server.start("127.0.0.1", 0)
        try:
            host, port = server.address
            for qid in (1111, 2222):
                query = dns.message.make_query("web.default.svc.cluster.local", "A")
                query.id = qid
                response = await dns.asyncquery.udp(query, host, port=port, timeout=5)
                assert response.id == qid and [r.to_text() for r in response.answer[0]] == ["10.96.0.20"]
            view.services[0] = ServiceInfo("default", "web", cluster_ips=("10.96.0.99",))
            view.generation += 1
            response = await dns.asyncquery.udp(dns.message.make_query("web.default.svc.cluster.local", "A"),
                                                host, port=port, timeout=5)
            assert [r.to_text() for r in response.answer[0]] == ["10.96.0.99"]
        finally:
            await server.stop()
    asyncio.run(scenario())


def test_upstream_parsing():
    assert Upstream.parse("192.0.2.53") == Upstream("192.0.2.53", 53)
    assert Upstream.parse("192.0.2.53:5353") == Upstream("192.0.2.53", 5353)
    assert Upstream.parse("[2001:db8::1]:53") == Upstream("2001:db8::1", 53)
    assert Upstream.parse("2001:db8::1") == Upstream("2001:db8::1", 53)


class _FixedResolver(Resolver):
    """An 'upstream' that knows example.com."""

    def __init__(self, view) -> None:
        super().__init__(view=view)

    def resolve(self, query):
        import dns.rrset
        response = dns.message.make_response(query)
        response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "192.0.2.80"))
        return response
