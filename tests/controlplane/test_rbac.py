"""RBAC's evaluation (controlplane/rbac.py) over the registry and an in-memory
store: the default roles, bindings to users and groups, namespaces,
subresources and resource names, and the kinds' validation."""
from __future__ import annotations

import asyncio

import pytest

from controlplane import rbac
from controlplane.api.errors import Invalid
from controlplane.api.registry import Registry
from controlplane.auth import Attributes, Authorizer, default_rules, forbidden_message
from controlplane.store import MemoryStore
from controlplane.testing import CountingStore, eventually
from proto.skiff.v1 import rbac_pb2
from skiff.api import kinds
from skiff.api.kinds import rbac as kinds_rbac
from skiff.pki import Identity

ALICE = Identity("alice", ("dev",))


def binding(name: str, namespace: str, role: str, *, kind: str = "ClusterRole", user: str = "",
            group: str = "") -> rbac_pb2.RoleBinding:
    b = rbac_pb2.RoleBinding(role_ref=rbac_pb2.RoleRef(api_group="rbac.authorization.k8s.io", kind=kind, name=role))
    b.metadata.name, b.metadata.namespace = name, namespace
    b.subjects.add(kind="User" if user else "Group", name=user or group)
    return b


def setup(*objects):
    async def go():
        registry = Registry(store=MemoryStore())
        await rbac.bootstrap(registry.create)
        for ns in ("team", "other"):
            namespace = kinds.kind_named("Namespace").message()
            namespace.metadata.name = ns
            await registry.create(namespace)
        for obj in objects:
            await registry.create(obj)
        return registry, Authorizer([*default_rules(), rbac.RbacAuthorizer(registry.store).decide])
    return asyncio.run(go())


def allowed(authorizer: Authorizer, identity: Identity, **attributes) -> bool:
    return asyncio.run(authorizer.allowed(identity, Attributes(**attributes)))


def test_nothing_bound_nothing_allowed_in_kubernetes_words():
    _, authorizer = setup()
    attributes = Attributes(verb="list", resource="pods", namespace="default")
    assert not allowed(authorizer, ALICE, verb="list", resource="pods", namespace="default")
    assert forbidden_message(ALICE, attributes) == ('pods is forbidden: User "alice" cannot list resource "pods" '
                                                    'in API group "" in the namespace "default"')


def test_view_in_one_namespace_reads_there_only():
    _, authorizer = setup(binding("alice-view", "team", "view", user="alice"))
    assert allowed(authorizer, ALICE, verb="list", resource="pods", namespace="team")
    assert allowed(authorizer, ALICE, verb="get", resource="pods", subresource="log", namespace="team", name="web")
    assert allowed(authorizer, ALICE, verb="watch", resource="deployments", api_group="apps", namespace="team")
    assert not allowed(authorizer, ALICE, verb="list", resource="pods", namespace="other")
    assert not allowed(authorizer, ALICE, verb="delete", resource="pods", namespace="team", name="web")
    assert not allowed(authorizer, ALICE, verb="create", resource="pods", subresource="exec", namespace="team")
    assert not allowed(authorizer, ALICE, verb="get", resource="secrets", namespace="team", name="s")
    assert not allowed(authorizer, ALICE, verb="list", resource="nodes")


def test_a_group_binding_and_edit():
    _, authorizer = setup(binding("dev-edit", "team", "edit", group="dev"))
    assert allowed(authorizer, ALICE, verb="create", resource="pods", subresource="exec", namespace="team")
    assert allowed(authorizer, ALICE, verb="get", resource="secrets", namespace="team", name="s")
    assert not allowed(authorizer, Identity("bob"), verb="list", resource="pods", namespace="team")


def test_a_role_with_resource_names_and_subresource_wildcards():
    role = rbac_pb2.Role(rules=[rbac_pb2.PolicyRule(verbs=["get"], api_groups=[""], resources=["configmaps"],
                                                    resource_names=["settings"]),
                                rbac_pb2.PolicyRule(verbs=["update"], api_groups=["apps"], resources=["*/scale"])])
    role.metadata.name, role.metadata.namespace = "narrow", "team"
    _, authorizer = setup(role, binding("alice-narrow", "team", "narrow", kind="Role", user="alice"))
    assert allowed(authorizer, ALICE, verb="get", resource="configmaps", namespace="team", name="settings")
    assert not allowed(authorizer, ALICE, verb="get", resource="configmaps", namespace="team", name="other")
    assert allowed(authorizer, ALICE, verb="update", resource="deployments", subresource="scale", api_group="apps",
                   namespace="team", name="web")
    assert not allowed(authorizer, ALICE, verb="update", resource="deployments", api_group="apps", namespace="team")


def test_cluster_admin_through_a_cluster_role_binding():
    crb = rbac_pb2.ClusterRoleBinding(role_ref=rbac_pb2.RoleRef(api_group="rbac.authorization.k8s.io",
                                                                kind="ClusterRole", name="cluster-admin"))
    crb.metadata.name = "alice-admin"
    crb.subjects.add(kind="User", name="alice")
    _, authorizer = setup(crb)
    assert allowed(authorizer, ALICE, verb="delete", resource="nodes", name="n1")
    assert allowed(authorizer, ALICE, verb="get", path="/healthz")


def test_the_defaults_exist_after_bootstrap_and_bootstrap_is_idempotent():
    registry, _ = setup()
    asyncio.run(rbac.bootstrap(registry.create))
    names = [r.metadata.name for r in asyncio.run(registry.store.list(kinds_rbac.CLUSTER_ROLE, ""))[0]]
    assert sorted(names) == ["admin", "cluster-admin", "edit", "view"]


@pytest.mark.parametrize("mutate, field_path", [
    (lambda b: b.role_ref.__setattr__("kind", "Secret"), "roleRef.kind"),
    (lambda b: b.role_ref.__setattr__("name", ""), "roleRef.name"),
    (lambda b: b.subjects[0].__setattr__("kind", "Robot"), "subjects[0].kind"),
])
def test_an_invalid_binding_names_its_field(mutate, field_path):
    registry, _ = setup()
    bad = binding("b", "team", "view", user="alice")
    mutate(bad)
    with pytest.raises(Invalid) as err:
        asyncio.run(registry.create(bad))
    assert err.value.field_path == field_path


def test_a_rule_without_verbs_is_invalid():
    registry, _ = setup()
    role = rbac_pb2.Role(rules=[rbac_pb2.PolicyRule(api_groups=[""], resources=["pods"])])
    role.metadata.name, role.metadata.namespace = "r", "team"
    with pytest.raises(Invalid) as err:
        asyncio.run(registry.create(role))
    assert err.value.field_path == "rules[0].verbs"


def test_decisions_come_from_the_caches_and_a_binding_takes_effect_and_stops_by_its_watch():
    async def main():
        store = CountingStore()
        registry = Registry(store=store)
        await rbac.bootstrap(registry.create)
        namespace = kinds.kind_named("Namespace").message()
        namespace.metadata.name = "team"
        await registry.create(namespace)
        authorizer = rbac.RbacAuthorizer(informers=registry.informers)
        check = Authorizer([*default_rules(), authorizer.decide])
        may_list = Attributes(verb="list", resource="pods", namespace="team")
        try:
            assert not await check.allowed(ALICE, may_list)   # the caches fill
            store.reset()
            await registry.create(binding("alice-view", "team", "view", user="alice"))
            await eventually(lambda: check.allowed(ALICE, may_list), what="the new RoleBinding granting")
            for _ in range(20):
                assert await check.allowed(ALICE, may_list)
            assert not await check.allowed(ALICE, Attributes(verb="list", resource="pods", namespace="other"))
            assert store.reads(*(k.name for k in kinds_rbac.KINDS)) == 0    # no store read per decision

            await registry.delete(kinds_rbac.ROLE_BINDING, "team", "alice-view")

            async def refused():
                return not await check.allowed(ALICE, may_list)
            await eventually(refused, what="the deleted RoleBinding to stop granting")
        finally:
            await authorizer.stop()
    asyncio.run(main())
