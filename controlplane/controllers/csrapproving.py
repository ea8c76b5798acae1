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
    reason in the condition's message.

`decide` is pure; the controller writes the condition it returns.
"""
from __future__ import annotations

import logging

from google.protobuf.message import Message

from skiff import bootstraptoken as bt
from skiff import csr as csrs
from skiff.api.kinds.certificatesigningrequest import add_condition, condition
from skiff.client import ApiClient, Conflict, NotFound
from skiff.controller import Controller, Key, SharedInformerFactory
from skiff.pki import NODES

log = logging.getLogger(__name__)
# Skiff's node certificate is also the agent's serving one (decision 32), hence server auth; its only DNS
# name may be the node's own (an IP SAN is not checked: see decision 36).
ALLOWED_USAGES = {"digital signature", "key encipherment", "client auth", "server auth"}


def decide(obj: Message) -> tuple[str, str, str] | None:
    """(condition type, reason, message), or None to leave the request to a person."""
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

    async def reconcile(self, key: Key) -> float | None:
        obj = self.csrs.get(key)
        if obj is None or condition(obj, "Approved") or condition(obj, "Denied"):
            return None
        verdict = decide(obj)
        if verdict is None:
            return None
        try:
            await self.client.update_status(add_condition(obj, *verdict))
        except (Conflict, NotFound):
            return None   # changed meanwhile: its new state comes through the informer
        log.info("%s certificatesigningrequest %s of %s: %s", verdict[0].lower(), obj.metadata.name,
                 obj.spec.username, verdict[2])
        return None
