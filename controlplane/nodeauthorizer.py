"""The node authorizer and NodeRestriction (Kubernetes' plugin/pkg/auth/authorizer/node
and plugin/pkg/admission/noderestriction, in part): what a node's certificate
(CN system:node:NAME, O system:nodes) may do.

Authorization (`NodeAuthorizer.decide`, from the request's attributes):
  - Secrets and ConfigMaps: only those a pod bound to NAME names
    (skiff.api.podrefs.references), read one by one (get, or list/watch with
    `metadata.name=X`, as the agent's per-object informers do); no other
    Secret, and never a whole list.
  - Node and Lease: write only its own (name NAME).
  - Pods: update (and its status), patch and delete only a pod bound to NAME;
    never create one or bind one.
  - ServiceAccount tokens: only for an account one of its pods runs as.
  - Everything else an agent reads or writes today: allowed (pods, events,
    Services, EndpointSlices, NetworkPolicies, namespaces, its own CSRs).

Admission (`NodeRestriction.admit`, from the object being written, which the
attributes of a create do not name):
  - a Node or Lease it creates or updates is its own (metadata.name NAME);
  - it may not set, change or remove its Node's labels under
    `node-restriction.kubernetes.io/` (they are how an administrator pins
    workloads to nodes the node itself cannot vouch for).

Both answer for nodes only: None (no opinion / nothing to say) for anyone else.

The pods of a node are read from the API server's cached pod lister
(controlplane/api/informers.py, indexed by spec.nodeName), so a Secret,
ConfigMap or token decision makes no store read; as every cache it lags a
write by one watch event, so a request the cache would refuse (a pod bound an
instant ago) is checked against the store before it is refused, as priority
admission does.
"""
from __future__ import annotations

import logging
from typing import Callable

from google.protobuf.message import Message

from controlplane.api.informers import ReadsLoopbackInformers
from controlplane.auth import Attributes
from skiff import pki
from skiff.api import kinds
from skiff.api.podrefs import references
from skiff.pki import Identity

log = logging.getLogger(__name__)
_READ = ("get", "list", "watch")
_REFERENCED = {"secrets": "Secret", "configmaps": "ConfigMap"}
_OWN = {("nodes", ""), ("leases", "coordination.k8s.io")}
_POD_WRITES = ("update", "patch", "delete")
RESTRICTED_LABEL_PREFIX = "node-restriction.kubernetes.io/"


def node_name(identity: Identity) -> str | None:
    if pki.NODES in identity.groups and identity.user.startswith("system:node:"):
        return identity.user.removeprefix("system:node:")
    return None


class NodeAuthorizer(ReadsLoopbackInformers):
    """Reads pods and what they reference from the API server's informers (ReadsLoopbackInformers)."""

    def __init__(self, store, *, informers=None) -> None:
        self.store = store
        self._informers = informers

    async def decide(self, identity: Identity, a: Attributes) -> bool | None:
        node = node_name(identity)
        if node is None:
            return None
        if a.resource in _REFERENCED and not a.api_group:
            return a.verb in _READ and bool(a.name) and await self._referenced(node, _REFERENCED[a.resource], a)
        if (a.resource, a.api_group) in _OWN and a.verb not in _READ:
            return a.name == node or (a.verb == "create" and not a.name)
        if a.resource == "serviceaccounts" and a.subresource == "token" and not a.api_group:
            # Only for an account one of its pods runs as (the projected token of that pod).
            return a.verb == "create" and await self._runs_as(node, a.namespace, a.name)
        if a.resource == "pods" and not a.api_group and a.verb not in _READ:
            if a.verb in _POD_WRITES and a.subresource in ("", "status"):
                return bool(a.name) and await self._bound(node, a.namespace, a.name)
            return False
        return True

    async def _runs_as(self, node: str, namespace: str, account: str) -> bool:
        return await self._any_pod(node, namespace,
                                   lambda p: (p.spec.service_account_name or "default") == account)

    async def _referenced(self, node: str, kind: str, a: Attributes) -> bool:
        return await self._any_pod(node, a.namespace, lambda p: (kind, a.namespace, a.name) in references(p))

    async def _any_pod(self, node: str, namespace: str, match: Callable[[Message], bool]) -> bool:
        """Whether a pod of `namespace` bound to `node` matches: the cache's pods, else the store's."""
        from controlplane.api.informers import NotReady
        try:
            pods = (await self.informers.lister("Pod")).on_node(node)
        except NotReady:
            pods = []
        if any(p.metadata.namespace == namespace and match(p) for p in pods):
            return True
        stored, _ = await self.store.list(kinds.kind_named("Pod"), namespace)   # the cache may lag
        return any(p.spec.node_name == node and match(p) for p in stored)

    async def stop(self) -> None:
        await self.informers.stop()

    async def _bound(self, node: str, namespace: str, name: str) -> bool:
        """Whether the pod is bound to `node`: the cache's pod, else the store's (a pod just
        bound may not be in the cache yet). A node writes its pods' status twice or more a
        pod started; a store read for each was the control plane's most frequent etcd read."""
        from controlplane.api.informers import NotReady
        from controlplane.store.interface import NotFound
        try:
            cached = (await self.informers.lister("Pod")).get_named(namespace or "default", name)
        except NotReady:
            cached = None
        if cached is not None and cached.spec.node_name == node:
            return True
        try:
            pod = await self.store.get(kinds.kind_named("Pod"), namespace or "default", name)
        except NotFound:
            return False
        return pod.spec.node_name == node


class NodeRestriction:
    def __init__(self, store) -> None:
        self.store = store

    async def admit(self, identity: Identity, a: Attributes, obj: Message) -> str | None:
        node = node_name(identity)
        if node is None or a.verb not in ("create", "update", "patch"):
            return None
        kind = kinds.kind_of(obj)
        own = (kind.name == "Node" and not a.subresource) or kind.name == "Lease"
        if own and obj.metadata.name != node:
            return (f'node "{node}" is not allowed to modify {kind.resource} "{obj.metadata.name}"'
                    if a.verb != "create" else
                    f'node "{node}" is not allowed to create {kind.resource} "{obj.metadata.name}"')
        if kind.name == "Node" and not a.subresource:   # a status write keeps the labels stored
            return await self._labels(node, a, obj)
        return None

    async def _labels(self, node: str, a: Attributes, obj: Message) -> str | None:
        from controlplane.store.interface import NotFound
        before: dict[str, str] = {}
        if a.verb != "create":
            try:
                before = dict((await self.store.get(kinds.kind_named("Node"), "", obj.metadata.name)).metadata.labels)
            except NotFound:
                pass
        after = dict(obj.metadata.labels)
        changed = sorted(k for k in set(before) | set(after)
                         if k.startswith(RESTRICTED_LABEL_PREFIX) and before.get(k) != after.get(k))
        if changed:
            return (f'node "{node}" is not allowed to modify labels: {", ".join(changed)} '
                    f'(the {RESTRICTED_LABEL_PREFIX} prefix is the administrator\'s)')
        return None
