"""RBAC's evaluation (Kubernetes' pkg/registry/rbac/validation and
plugin/pkg/auth/authorizer/rbac): may a user, by the roles bound to them or
their groups, do what a request's attributes say. One authorizer rule of
controlplane/auth.py, after system:masters and system:nodes.

The roles and bindings are read from the store on each decision (four range
reads, only for users who are not system:masters or nodes); an informer cache
is the next step once a secure cluster serves many such users.
`bootstrap` creates the default ClusterRoles and system:masters' binding.
"""
from __future__ import annotations

from typing import Awaitable, Callable

from google.protobuf.message import Message

from controlplane.auth import Attributes
from controlplane.store import AlreadyExists, NotFound
from skiff.api import kinds
from skiff.api.kinds import rbac
from skiff.pki import Identity


def subject_matches(subject: Message, identity: Identity, binding_namespace: str) -> bool:
    if subject.kind == "User":
        return subject.name == identity.user
    if subject.kind == "Group":
        return subject.name in identity.groups
    if subject.kind == "ServiceAccount":
        namespace = subject.namespace or binding_namespace
        return identity.user == f"system:serviceaccount:{namespace}:{subject.name}"
    return False


def _resource_matches(rule: Message, a: Attributes) -> bool:
    combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    for resource in rule.resources:
        if resource in ("*", combined):
            return True
        if a.subresource and resource == f"*/{a.subresource}":
            return True
    return False


def rule_allows(rule: Message, a: Attributes) -> bool:
    """Kubernetes' RuleAllows: verb, then group/resource/name, or the non-resource path."""
    if "*" not in rule.verbs and a.verb not in rule.verbs:
        return False
    if a.path:
        return any(url == "*" or url == a.path or (url.endswith("*") and a.path.startswith(url[:-1]))
                   for url in rule.non_resource_urls)
    if "*" not in rule.api_groups and a.api_group not in rule.api_groups:
        return False
    if not _resource_matches(rule, a):
        return False
    return not rule.resource_names or a.name in rule.resource_names


class RbacAuthorizer:
    def __init__(self, store) -> None:
        self.store = store

    async def _rules(self, ref: Message, namespace: str) -> list[Message]:
        kind = kinds.kind_named(ref.kind)
        try:
            role = await self.store.get(kind, namespace if kind.namespaced else "", ref.name)
        except NotFound:
            return []   # a binding to a role not (yet) there grants nothing
        return list(role.rules)

    async def decide(self, identity: Identity, a: Attributes) -> bool | None:
        """True when a bound role allows the request; None (no opinion: refused) otherwise."""
        bindings, _ = await self.store.list(rbac.CLUSTER_ROLE_BINDING, "")
        scoped = [(b, "") for b in bindings]
        if a.namespace:
            namespaced, _ = await self.store.list(rbac.ROLE_BINDING, a.namespace)
            scoped += [(b, a.namespace) for b in namespaced]
        for binding, namespace in scoped:
            if not any(subject_matches(s, identity, namespace) for s in binding.subjects):
                continue
            for rule in await self._rules(binding.role_ref, namespace):
                if rule_allows(rule, a):
                    return True
        return None


async def bootstrap(create: Callable[[Message], Awaitable[Message]]) -> None:
    """The default ClusterRoles and bindings (idempotent: existing ones are kept, as edited)."""
    for obj in (*rbac.default_cluster_roles(), *rbac.default_cluster_role_bindings()):
        try:
            await create(obj)
        except AlreadyExists:
            pass
