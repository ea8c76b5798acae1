"""The node authorizer (Kubernetes' plugin/pkg/auth/authorizer/node, in part):
what a node's certificate (CN system:node:NAME, O system:nodes) may do.

  - Secrets and ConfigMaps: only those a pod bound to NAME names
    (skiff.api.podrefs.references), read one by one (get, or list/watch with
    `metadata.name=X`, as the agent's per-object informers do); no other
    Secret, and never a whole list.
  - Node and Lease: write only its own (name NAME).
  - Everything else an agent reads or writes today: allowed (pods and their
    status, events, Services, EndpointSlices, NetworkPolicies, namespaces).
    NodeRestriction's finer checks (the status only of pods bound to NAME) are
    not done yet.

Answers True or False for nodes, None (no opinion) for anyone else.
"""
from __future__ import annotations

import logging

from controlplane.auth import Attributes
from skiff import pki
from skiff.api import kinds
from skiff.api.podrefs import references
from skiff.pki import Identity

log = logging.getLogger(__name__)
_READ = ("get", "list", "watch")
_REFERENCED = {"secrets": "Secret", "configmaps": "ConfigMap"}
_OWN = {("nodes", ""), ("leases", "coordination.k8s.io")}


def node_name(identity: Identity) -> str | None:
    if pki.NODES in identity.groups and identity.user.startswith("system:node:"):
        return identity.user.removeprefix("system:node:")
    return None


class NodeAuthorizer:
    def __init__(self, store) -> None:
        self.store = store

    async def decide(self, identity: Identity, a: Attributes) -> bool | None:
        node = node_name(identity)
        if node is None:
            return None
        if a.resource in _REFERENCED and not a.api_group:
            return a.verb in _READ and bool(a.name) and await self._referenced(node, _REFERENCED[a.resource], a)
        if (a.resource, a.api_group) in _OWN and a.verb not in _READ:
            return a.name == node or (a.verb == "create" and not a.name)
        return True

    async def _referenced(self, node: str, kind: str, a: Attributes) -> bool:
        pods, _ = await self.store.list(kinds.kind_named("Pod"), a.namespace)
        return any(p.spec.node_name == node and (kind, a.namespace, a.name) in references(p) for p in pods)
