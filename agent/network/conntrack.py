"""Forget the conntrack entries of a removed pod's UDP hostPorts.

NAT is decided on a flow's first packet and remembered in conntrack. A UDP
client that keeps sending from the same source port (DNS, syslog, statsd)
refreshes its entry forever, so after the pod behind a hostPort is replaced
its packets would still be DNAT'd to the old, gone address. Kubernetes'
proxies clear these entries for the same reason. TCP needs nothing: a new
connection is a new flow.

Dumping conntrack through pyroute2 is slow on a busy node, so this runs only
for pods that had UDP hostPorts; a failure is logged, never raised, because
it must not stop the pod's deletion.
"""
from __future__ import annotations

import logging
import socket

from agent.lightimport import package

log = logging.getLogger(__name__)


def forget_udp_flows_to(*, pod_ip: str) -> int:
    """Delete conntrack entries of UDP flows answered by pod_ip; returns how many."""
    try:
        package("pyroute2")  # its submodules only (agent.lightimport); imported here: rarely needed
        from pyroute2.conntrack import Conntrack
        from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple
        with Conntrack() as ct:
            stale = list(ct.dump_entries(tuple_reply=NFCTAttrTuple(proto=socket.IPPROTO_UDP, saddr=pod_ip)))
            for entry in stale:
                ct.delete(entry)
        return len(stale)
    except Exception:  # conntrack missing or busy: stale flows expire on their own
        log.warning("could not clear conntrack entries of UDP flows to %s", pod_ip, exc_info=True)
        return 0
