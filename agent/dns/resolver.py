"""The cluster zone's answers: a pure function from a DNS query to a response.

Kubernetes' DNS specification (as CoreDNS's kubernetes plugin serves it),
under the cluster domain D (default cluster.local):

    svc.ns.svc.D            A     the ClusterIP; a headless Service: its ready
                                  endpoints' addresses; ExternalName: a CNAME
    _port._proto.svc.ns.svc.D SRV one per named port (ClusterIP: to svc.ns.svc.D;
                                  headless: to each ready endpoint's name)
    svc.ns.svc.D            SRV   every named port, as above
    host.svc.ns.svc.D       A     a headless Service's endpoint by its hostname
                                  (a pod's spec.hostname with spec.subdomain =
                                  svc) or its address with dashes (10-1-0-5)
    a-b-c-d.ns.pod.D        A     a.b.c.d (CoreDNS's `pods insecure`)
    d.c.b.a.in-addr.arpa    PTR   a ClusterIP -> svc.ns.svc.D; a headless
                                  endpoint's address -> its name
    D                       SOA   the zone's SOA

A name in the zone that does not exist is NXDOMAIN, a name that exists
without the asked type (AAAA of an IPv4 Service) NOERROR with no answer; both
carry the zone's SOA in the authority section, whose minimum is the negative
TTL (RFC 2308). `resolve` returns None for a name outside the zone (and a
reverse name it does not know): the server forwards those upstream.
"""
from __future__ import annotations

import ipaddress
import time

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from agent.dns.view import ClusterView, EndpointInfo, ServiceInfo

DEFAULT_TTL = 5   # CoreDNS's kubernetes plugin's default, answers and negative ones alike
REVERSE_V4 = dns.name.from_text("in-addr.arpa.")


class Resolver:
    def __init__(self, *, view: ClusterView, domain: str = "cluster.local", ttl: int = DEFAULT_TTL,
                 serial: int | None = None) -> None:
        self.view = view
        self.domain = dns.name.from_text(domain.strip(".") + ".")
        self.domain_text = self.domain.to_text(omit_final_dot=True)
        self.ttl = ttl
        serial = int(time.time()) & 0xFFFFFFFF if serial is None else serial
        self._soa = dns.rrset.from_text(
            self.domain, ttl, dns.rdataclass.IN, dns.rdatatype.SOA,
            f"ns.dns.{self.domain} hostmaster.{self.domain} {serial} 7200 1800 86400 {ttl}")

    @property
    def generation(self) -> int:
        """Changes whenever an answer may have (the view's)."""
        return getattr(self.view, "generation", 0)

    # ------------------------------------------------------------ entry point

    def resolve(self, query: dns.message.Message) -> dns.message.Message | None:
        """The response to `query`, or None when it is not ours to answer (forward it)."""
        response = dns.message.make_response(query)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        if qname.is_subdomain(REVERSE_V4):
            target = self._reverse(qname)
            if target is None:
                return None
            if qtype in (dns.rdatatype.PTR, dns.rdatatype.ANY):
                response.answer.append(self._rrset(qname, dns.rdatatype.PTR, target))
            else:
                response.authority.append(self._soa)
            response.flags |= dns.flags.AA
            return response
        if not qname.is_subdomain(self.domain):
            return None
        response.flags |= dns.flags.AA
        labels = [label.decode("ascii", "replace").lower()
                  for label in qname.relativize(self.domain).labels]
        labels.reverse()   # from the zone down: ["svc", "ns", "name", ...]
        found = self._lookup(labels, qname, qtype, response)
        if found is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        if not response.answer:
            response.authority.append(self._soa)
        return response

    # ------------------------------------------------------------ the zone

    def _lookup(self, labels: list[str], qname: dns.name.Name, qtype: int,
                response: dns.message.Message) -> bool | None:
        """Fill response.answer; True when the name exists, None when it does not."""
        if labels in ([], ["svc"], ["pod"]):
            if not labels and qtype in (dns.rdatatype.SOA, dns.rdatatype.ANY):
                response.answer.append(self._soa)
            return True
        if labels[0] == "pod":
            return self._pod(labels[1:], qname, qtype, response)
        if labels[0] != "svc":
            return None
        namespaces = self.view.namespaces()
        if labels[1] not in namespaces:
            return None
        if len(labels) == 2:
            return True
        ns = labels[1]
        if len(labels) == 5 and labels[3].startswith("_") and labels[4].startswith("_"):
            svc = self.view.service(ns, labels[2])
            if svc is None:
                return None
            return self._srv(svc, qname, qtype, response, port_name=labels[4][1:], protocol=labels[3][1:])
        svc = self.view.service(ns, labels[2]) if len(labels) <= 4 else None
        if svc is None:
            return None
        if len(labels) == 3:
            return self._service(svc, qname, qtype, response)
        return self._endpoint(svc, labels[3], qname, qtype, response)

    def _service(self, svc: ServiceInfo, qname: dns.name.Name, qtype: int,
                 response: dns.message.Message) -> bool:
        if svc.type == "ExternalName":
            if svc.external_name:
                response.answer.append(self._rrset(qname, dns.rdatatype.CNAME, svc.external_name.rstrip(".") + "."))
            return True
        if qtype == dns.rdatatype.SRV:
            return self._srv(svc, qname, qtype, response, port_name=None, protocol=None)
        if svc.headless:
            addresses = [a for ep in self._ready(svc) for a in ep.addresses]
        else:
            addresses = list(svc.ips)
        self._addresses(qname, qtype, addresses, response)
        return True

    def _srv(self, svc: ServiceInfo, qname: dns.name.Name, qtype: int, response: dns.message.Message, *,
             port_name: str | None, protocol: str | None) -> bool | None:
        """SRV for the Service's named ports (one name and protocol, or all)."""
        ports = [p for p in svc.ports if p.name
                 and (port_name is None or (p.name.lower() == port_name and p.protocol.lower() == protocol))]
        if not ports:
            return None if port_name is not None else True
        if qtype not in (dns.rdatatype.SRV, dns.rdatatype.ANY):
            return True
        svc_name = dns.name.from_text(f"{svc.name}.{svc.namespace}.svc", origin=self.domain)
        records, extra = [], []
        for port in ports:
            if not svc.headless:
                records.append(f"0 100 {port.port} {svc_name}")
                extra += [self._rrset(svc_name, dns.rdatatype.A, ip) for ip in svc.ips if _v4(ip)]
                continue
            ready = self._ready(svc)
            weight = max(1, 100 // max(1, len(ready)))
            for ep in ready:
                target_port = next((p.port for p in ep.ports if p.name == port.name), port.port)
                for address in ep.addresses:
                    name = dns.name.from_text(_endpoint_label(ep, address), origin=svc_name)
                    records.append(f"0 {weight} {target_port} {name}")
                    if _v4(address):
                        extra.append(self._rrset(name, dns.rdatatype.A, address))
        if records:
            response.answer.append(self._rrset(qname, dns.rdatatype.SRV, *records))
            response.additional.extend(extra)
        return True

    def _endpoint(self, svc: ServiceInfo, label: str, qname: dns.name.Name, qtype: int,
                  response: dns.message.Message) -> bool | None:
        if not svc.headless:
            return None
        addresses = [a for ep in self._ready(svc) for a in ep.addresses if _endpoint_label(ep, a) == label]
        if not addresses:
            return None
        self._addresses(qname, qtype, addresses, response)
        return True

    def _pod(self, labels: list[str], qname: dns.name.Name, qtype: int,
             response: dns.message.Message) -> bool | None:
        if len(labels) == 1:
            return True if labels[0] in self.view.namespaces() else None
        if len(labels) != 2:
            return None
        try:
            address = ipaddress.IPv4Address(labels[1].replace("-", "."))
        except ValueError:
            return None
        self._addresses(qname, qtype, [str(address)], response)
        return True

    def _reverse(self, qname: dns.name.Name) -> dns.name.Name | None:
        octets = [label.decode("ascii", "replace") for label in qname.relativize(REVERSE_V4).labels]
        if len(octets) != 4:
            return None
        ip = ".".join(reversed(octets))
        svc = self.view.service_by_ip(ip)
        if svc is not None:
            return dns.name.from_text(f"{svc.name}.{svc.namespace}.svc", origin=self.domain)
        found = self.view.endpoint_by_ip(ip)
        if found is not None:
            svc, ep = found
            return dns.name.from_text(f"{_endpoint_label(ep, ip)}.{svc.name}.{svc.namespace}.svc", origin=self.domain)
        return None

    # ------------------------------------------------------------ helpers

    def _ready(self, svc: ServiceInfo) -> list[EndpointInfo]:
        return [ep for ep in self.view.endpoints(svc.namespace, svc.name) if ep.ready and ep.addresses]

    def _addresses(self, qname: dns.name.Name, qtype: int, addresses: list[str],
                   response: dns.message.Message) -> None:
        wanted = {dns.rdatatype.A: [a for a in addresses if _v4(a)],
                  dns.rdatatype.AAAA: [a for a in addresses if not _v4(a)]}
        types = (dns.rdatatype.A, dns.rdatatype.AAAA) if qtype == dns.rdatatype.ANY else (qtype,)
        for rdtype in types:
            unique = list(dict.fromkeys(wanted.get(rdtype, [])))
            if unique:
                response.answer.append(self._rrset(qname, rdtype, *unique))

    def _rrset(self, name: dns.name.Name, rdtype: int, *texts: object) -> dns.rrset.RRset:
        return dns.rrset.from_text(name, self.ttl, dns.rdataclass.IN, rdtype, *[str(t) for t in texts])


def _v4(address: str) -> bool:
    return ":" not in address


def _endpoint_label(ep: EndpointInfo, address: str) -> str:
    """An endpoint's name under its Service: its hostname, else its address with dashes."""
    return ep.hostname.lower() if ep.hostname else address.replace(".", "-").replace(":", "-")
