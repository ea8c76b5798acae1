"""The CSR auto-approver, as kube-controller-manager's csrapproving for the
kubelet's client certificates (issue 12, decision 36).

For signer `kubernetes.io/kube-apiserver-client-kubelet` only (others wait for
a person: `skiff certificate approve|deny`):

  - a bootstrapper (system:bootstrappers, i.e. a valid bootstrap token) asking
    for `system:node:NAME` in `system:nodes`: approved (a new node joining);
  - a node (system:node:NAME) asking for its own name again: approved (renewal);
  - a node asking for another node's name, any request whose subject is not
    a node's, DNS names other than the node's, or usages beyond digital
    signature / key encipherment / client auth / server auth: denied, with the
    reason in the condition's message;
  - IP addresses (the certificate is also the agent's serving one, decision 32):
    loopback always (it reaches only the dialer's own host); otherwise a node's
    renewal may name only the addresses of its own Node (status.addresses), and
    a bootstrapper's first request - made before its Node exists - no address
    that another Node has. Anything else is denied, naming the address.

`decide` is pure; the controller writes the condition it returns.
"""
from __future__ import annotations

import ipaddress
import logging
from typing import Mapping

from google.protobuf.message import Message

from skiff import bootstraptoken as bt
from skiff import csr as csrs
from skiff.api.kinds.certificatesigningrequest import add_condition, condition
from skiff.client import ApiClient, Conflict, NotFound
from skiff.controller import Controller, Key, SharedInformerFactory
from skiff.pki import NODES

log = logging.getLogger(__name__)
# Skiff's node certificate is also the agent's serving one (decision 32), hence server auth; its only DNS
# name may be the node's own; its IP addresses are checked against the Nodes (decision 41).
ALLOWED_USAGES = {"digital signature", "key encipherment", "client auth", "server auth"}


def node_addresses(nodes) -> dict[str, set[str]]:
    """{node name: its IP addresses (status.addresses), normalized}."""
    out: dict[str, set[str]] = {}
    for n in nodes:
        ips = out.setdefault(n.metadata.name, set())
        for a in n.status.addresses:
            try:
                ips.add(str(ipaddress.ip_address(a.address)))
            except ValueError:
                pass   # a Hostname
    return out


def decide(obj: Message, nodes: Mapping[str, set[str]] | None = None) -> tuple[str, str, str] | None:
    """(condition type, reason, message), or None to leave the request to a person.
    `nodes`: every Node's IP addresses (node_addresses), against which IP SANs are checked."""
    nodes = nodes if nodes is not None else {}
    spec = obj.spec
    if spec.signer_name != csrs.KUBELET_CLIENT_SIGNER:
        return None
    try:
        asked = csrs.request_identity(spec.request)
    except csrs.CsrError as exc:
        return "Denied", "InvalidRequest", f"the request cannot be read: {exc}"
    if not asked.user.startswith(csrs.NODE_PREFIX) or list(asked.groups) != [NODES]:
        return ("Denied", "InvalidSubject", f"signer {csrs.KUBELET_CLIENT_SIGNER} issues only CN system:node:NAME "
                f"O system:nodes; the request asks for CN {asked.user!r} O {list(asked.groups)}")
    extra = sorted(set(spec.usages) - ALLOWED_USAGES)
    if extra or "client auth" not in spec.usages:
        return ("Denied", "InvalidUsages", f"a node certificate has usages among {', '.join(sorted(ALLOWED_USAGES))} "
                f"(client auth among them); the request asks for {', '.join(spec.usages)}")
    node = asked.user.removeprefix(csrs.NODE_PREFIX)
    others = [d for d in csrs.request_dns_names(spec.request) if d != node]
    if others:
        return ("Denied", "InvalidSubject", f"a node certificate names only its node ({node!r}) as a DNS name; "
                f"the request also asks for {', '.join(others)}")
    ips = [ip for ip in csrs.request_ip_addresses(spec.request) if not ipaddress.ip_address(ip).is_loopback]
    renewal = NODES in spec.groups and spec.username.startswith(csrs.NODE_PREFIX) and bt.GROUP not in spec.groups
    if ips and renewal and spec.username == asked.user:
        own = nodes.get(node)
        if own is None:
            return ("Denied", "InvalidSubject", f"node {node!r} has no Node object to check the IP addresses "
                    f"against; the request asks for {', '.join(ips)}")
        alien = [ip for ip in ips if ip not in own]
        if alien:
            return ("Denied", "InvalidSubject", f"a node certificate names only its Node's addresses "
                    f"({', '.join(sorted(own)) or 'none'}); the request also asks for {', '.join(alien)}")
    if ips and bt.GROUP in spec.groups:
        taken = [(ip, other) for ip in ips for other, theirs in sorted(nodes.items()) if other != node and ip in theirs]
        if taken:
            return ("Denied", "InvalidSubject", "; ".join(f"IP address {ip} is node {other!r}'s" for ip, other in taken)
                    + f": a joining node may not name it")
    if bt.GROUP in spec.groups:
        return "Approved", "AutoApproved", "Auto approving kubelet client certificate after SubjectAccessReview."
    if NODES in spec.groups and spec.username.startswith(csrs.NODE_PREFIX):
        if spec.username == asked.user:
            return ("Approved", "AutoApproved",
                    "Auto approving self kubelet client certificate after SubjectAccessReview.")
        return ("Denied", "NotOwnNode", f"node {spec.username.removeprefix(csrs.NODE_PREFIX)!r} may renew only its "
                f"own certificate; the request asks for {asked.user!r}")
    return None


class CsrApprovingController(Controller):
    name = "csrapproving"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory) -> None:
        super().__init__(metrics=factory.metrics)
        self.client = client
        self.csrs = self.watch(factory.informer("CertificateSigningRequest"))
        self.nodes = self.uses(factory.informer("Node"))   # read, not watched: a Node's change decides no CSR

    async def reconcile(self, key: Key) -> float | None:
        obj = self.csrs.get(key)
        if obj is None or condition(obj, "Approved") or condition(obj, "Denied"):
            return None
        verdict = decide(obj, node_addresses(self.nodes.list()))
        if verdict is None:
            return None
        try:
            await self.client.update_status(add_condition(obj, *verdict))
        except (Conflict, NotFound):
            return None   # changed meanwhile: its new state comes through the informer
        log.info("%s certificatesigningrequest %s of %s: %s", verdict[0].lower(), obj.metadata.name,
                 obj.spec.username, verdict[2])
        return None
