"""RBAC's evaluation (Kubernetes' pkg/registry/rbac/validation and
plugin/pkg/auth/authorizer/rbac): may a user, by the roles bound to them or
their groups, do what a request's attributes say. One authorizer rule of
controlplane/auth.py, after system:masters and system:nodes.

The roles and bindings are read from informer caches of the four kinds
(Role, ClusterRole, RoleBinding, ClusterRoleBinding: the API server's own
informers, controlplane/api/informers.py), as Kubernetes' authorizer reads its
listers: a decision costs no store read, and a binding created or deleted
takes effect when its watch event arrives (milliseconds). Until the caches
have listed once, RBAC has no opinion (refused), with a warning.
`bootstrap` creates the default ClusterRoles and system:masters' binding.
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from google.protobuf.message import Message

from controlplane.api.informers import LoopbackInformers, NotReady, ReadsLoopbackInformers
from controlplane.auth import Attributes
from controlplane.store import AlreadyExists
from skiff.api.kinds import rbac
from skiff.controller import Lister
from skiff.pki import Identity

log = logging.getLogger(__name__)


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


class RbacAuthorizer(ReadsLoopbackInformers):
    """Reads roles and bindings from the API server's informers (ReadsLoopbackInformers)."""

    def __init__(self, store: Any = None, *, informers: LoopbackInformers | None = None) -> None:
        self.store = store
        self._informers = informers

    async def decide(self, identity: Identity, a: Attributes) -> bool | None:
        """True when a bound role allows the request; None (no opinion: refused) otherwise."""
        try:
            cluster_bindings = await self.informers.lister(rbac.CLUSTER_ROLE_BINDING.name)
            bindings = await self.informers.lister(rbac.ROLE_BINDING.name)
            roles = {kind.name: await self.informers.lister(kind.name) for kind in (rbac.ROLE, rbac.CLUSTER_ROLE)}
        except NotReady as exc:
            log.warning("RBAC cannot decide yet: %s", exc)
            return None
        scoped = [(b, "") for b in cluster_bindings.list()]
        if a.namespace:
            scoped += [(b, a.namespace) for b in bindings.list(a.namespace)]
        for binding, namespace in scoped:
            if not any(subject_matches(s, identity, namespace) for s in binding.subjects):
                continue
            for rule in _rules(roles, binding.role_ref, namespace):
                if rule_allows(rule, a):
                    return True
        return None

    async def stop(self) -> None:
        await self.informers.stop()


def _rules(roles: dict[str, Lister], ref: Message, namespace: str) -> list[Message]:
    lister = roles.get(ref.kind)
    role = lister.get_named(namespace if ref.kind == rbac.ROLE.name else "", ref.name) if lister else None
    return list(role.rules) if role is not None else []   # a binding to a role not (yet) there grants nothing


async def bootstrap(create: Callable[[Message], Awaitable[Message]]) -> None:
    """The default ClusterRoles and bindings (idempotent: existing ones are kept, as edited)."""
    for obj in (*rbac.default_cluster_roles(), *rbac.default_cluster_role_bindings()):
        try:
            await create(obj)
        except AlreadyExists:
            pass
