"""The cluster zone's answers, record type by record type (queries and answers through dnspython)."""
from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from agent.dns import EndpointInfo, Port, Resolver, ServiceInfo, StaticView

WEB = ServiceInfo("shop", "web", cluster_ips=("10.96.0.20",),
                  ports=(Port("http", "TCP", 80), Port("metrics", "TCP", 9100)))
DB = ServiceInfo("shop", "db", cluster_ips=("None",), ports=(Port("pg", "TCP", 5432),))
EXT = ServiceInfo("shop", "search", type="ExternalName", external_name="search.example.com")
ENDPOINTS = {("shop", "db"): [
    EndpointInfo(("10.244.1.5",), hostname="db-0", ports=(Port("pg", "TCP", 15432),)),
    EndpointInfo(("10.244.2.7",), ports=(Port("pg", "TCP", 15432),)),
    EndpointInfo(("10.244.2.9",), ready=False, hostname="db-2"),
]}


@pytest.fixture
def resolver() -> Resolver:
    return Resolver(view=StaticView(services=[WEB, DB, EXT], endpoint_lists=ENDPOINTS), serial=7)


def ask(resolver: Resolver, name: str, rdtype: str = "A") -> dns.message.Message:
    response = resolver.resolve(dns.message.make_query(name, rdtype))
    assert response is not None
    # through the wire and back, as a client sees it
    return dns.message.from_wire(response.to_wire())


def answers(response: dns.message.Message, rdtype: str = "A") -> list[str]:
    return sorted(r.to_text() for rrset in response.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype)
                  for r in rrset)


def test_a_of_a_service_is_its_cluster_ip(resolver):
    response = ask(resolver, "web.shop.svc.cluster.local")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert answers(response) == ["10.96.0.20"]
    assert response.answer[0].ttl == 5


def test_names_are_case_insensitive_and_the_question_is_echoed(resolver):
    response = ask(resolver, "WEB.Shop.SVC.cluster.local")
    assert answers(response) == ["10.96.0.20"]
    assert response.answer[0].name.to_text() == "WEB.Shop.SVC.cluster.local."


def test_aaaa_of_an_ipv4_service_is_no_data_with_the_soa(resolver):
    response = ask(resolver, "web.shop.svc.cluster.local", "AAAA")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_headless_service_answers_its_ready_endpoints(resolver):
    assert answers(ask(resolver, "db.shop.svc.cluster.local")) == ["10.244.1.5", "10.244.2.7"]


def test_headless_endpoint_by_hostname_and_by_dashed_address(resolver):
    assert answers(ask(resolver, "db-0.db.shop.svc.cluster.local")) == ["10.244.1.5"]
    assert answers(ask(resolver, "10-244-2-7.db.shop.svc.cluster.local")) == ["10.244.2.7"]
    # not ready: not served
    assert ask(resolver, "db-2.db.shop.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN


def test_srv_for_a_named_port_of_a_cluster_ip_service(resolver):
    response = ask(resolver, "_http._tcp.web.shop.svc.cluster.local", "SRV")
    assert answers(response, "SRV") == ["0 100 80 web.shop.svc.cluster.local."]
    assert [r.to_text() for rrset in response.additional for r in rrset] == ["10.96.0.20"]


def test_srv_of_a_headless_service_names_each_endpoint_with_its_target_port(resolver):
    response = ask(resolver, "_pg._tcp.db.shop.svc.cluster.local", "SRV")
    assert answers(response, "SRV") == ["0 50 15432 10-244-2-7.db.shop.svc.cluster.local.",
                                        "0 50 15432 db-0.db.shop.svc.cluster.local."]


def test_srv_of_the_service_name_lists_every_named_port(resolver):
    assert answers(ask(resolver, "web.shop.svc.cluster.local", "SRV"), "SRV") == [
        "0 100 80 web.shop.svc.cluster.local.", "0 100 9100 web.shop.svc.cluster.local."]


def test_srv_of_an_unknown_port_or_protocol_is_nxdomain(resolver):
    assert ask(resolver, "_grpc._tcp.web.shop.svc.cluster.local", "SRV").rcode() == dns.rcode.NXDOMAIN
    assert ask(resolver, "_http._udp.web.shop.svc.cluster.local", "SRV").rcode() == dns.rcode.NXDOMAIN


def test_external_name_is_a_cname(resolver):
    response = ask(resolver, "search.shop.svc.cluster.local")
    assert answers(response, "CNAME") == ["search.example.com."]


def test_unknown_names_are_nxdomain_with_the_zone_soa(resolver):
    for name in ("nope.shop.svc.cluster.local", "web.nowhere.svc.cluster.local", "x.web.shop.svc.cluster.local",
                 "foo.cluster.local"):
        response = ask(resolver, name)
        assert response.rcode() == dns.rcode.NXDOMAIN, name
        soa = response.authority[0]
        assert soa.name.to_text() == "cluster.local."
        assert soa[0].to_text() == "ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 5"
        assert soa.ttl == 5


def test_a_namespace_that_exists_is_an_empty_non_terminal(resolver):
    response = ask(resolver, "shop.svc.cluster.local")
    assert response.rcode() == dns.rcode.NOERROR and response.answer == []


def test_soa_of_the_zone(resolver):
    assert answers(ask(resolver, "cluster.local", "SOA"), "SOA")[0].startswith("ns.dns.cluster.local.")


def test_pod_records_echo_the_dashed_address(resolver):
    assert answers(ask(resolver, "10-244-1-5.shop.pod.cluster.local")) == ["10.244.1.5"]
    assert ask(resolver, "not-an-ip.shop.pod.cluster.local").rcode() == dns.rcode.NXDOMAIN


def test_ptr_of_a_cluster_ip_and_of_a_headless_endpoint(resolver):
    response = ask(resolver, dns.reversename.from_address("10.96.0.20").to_text(), "PTR")
    assert answers(response, "PTR") == ["web.shop.svc.cluster.local."]
    response = ask(resolver, dns.reversename.from_address("10.244.1.5").to_text(), "PTR")
    assert answers(response, "PTR") == ["db-0.db.shop.svc.cluster.local."]


def test_names_outside_the_zone_are_not_ours(resolver):
    assert resolver.resolve(dns.message.make_query("example.com", "A")) is None
    assert resolver.resolve(dns.message.make_query(
        dns.reversename.from_address("192.0.2.1").to_text(), "PTR")) is None


def test_a_custom_cluster_domain():
    resolver = Resolver(view=StaticView(services=[WEB]), domain="corp.internal")
    assert answers(ask(resolver, "web.shop.svc.corp.internal")) == ["10.96.0.20"]
    assert resolver.resolve(dns.message.make_query("web.shop.svc.cluster.local", "A")) is None


def test_a_service_appears_and_goes_with_the_view():
    view = StaticView()
    resolver = Resolver(view=view)
    assert ask(resolver, "web.shop.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    view.services.append(WEB)
    assert answers(ask(resolver, "web.shop.svc.cluster.local")) == ["10.96.0.20"]
