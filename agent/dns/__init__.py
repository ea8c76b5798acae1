"""Cluster DNS on every node (issue 11 item 6; docs/architecture.md, decision 26).

NodeLocal DNSCache's shape: a small server inside the agent's process, on
the pod bridge's gateway address, so a pod reaches the DNS of its own node
and no query crosses to another node or to etcd.

    view.py          ClusterView: what the resolver reads (Services, endpoints), and StaticView
    informerview.py  InformerView: the ClusterView over the agent's informer caches
    resolver.py      Resolver: a query -> the cluster zone's response (pure), or None to forward
    server.py        DnsServer: UDP + TCP on one address, forwarding to --dns-upstream
    resolvconf.py    a pod's /etc/resolv.conf per dnsPolicy, as kubelet writes it
"""
from agent.dns.resolvconf import ClusterDns, HostResolv, resolv_conf
from agent.dns.resolver import Resolver
from agent.dns.server import DnsServer, Upstream
from agent.dns.view import ClusterView, EndpointInfo, Port, ServiceInfo, StaticView

__all__ = ["ClusterDns", "ClusterView", "DnsServer", "EndpointInfo", "HostResolv", "Port", "Resolver",
           "ServiceInfo", "StaticView", "Upstream", "resolv_conf"]
