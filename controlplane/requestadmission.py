"""Admission that needs the requester (issue 12, decision 36): what the API
server does with the object being written once the request is authorized,
for both doors (gRPC: controlplane/api/guard.py; REST: controlplane/rest/resources.py).

  - at create, the kind's strategy hears who asked (`Strategy.requested_by`:
    a CertificateSigningRequest records spec.username/groups from the
    credential, whatever the client sent);
  - NodeRestriction (controlplane/nodeauthorizer.py) for nodes.

Returns None, or the Forbidden message.
"""
from __future__ import annotations

from google.protobuf.message import Message

from controlplane.auth import Attributes
from controlplane.nodeauthorizer import NodeRestriction
from skiff.api import kinds
from skiff.pki import Identity


class RequestAdmission:
    def __init__(self, store) -> None:
        self.node_restriction = NodeRestriction(store)

    async def __call__(self, identity: Identity, attributes: Attributes, obj: Message) -> str | None:
        try:
            kind = kinds.kind_of(obj)
        except kinds.UnknownKind:
            return None
        if attributes.verb == "create" and not attributes.subresource:
            kind.strategy.requested_by(obj, user=identity.user, groups=tuple(identity.groups),
                                       uid=getattr(identity, "uid", "") or "")
        return await self.node_restriction.admit(identity, attributes, obj)
