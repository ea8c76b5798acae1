"""The roles kubeadm creates for joining nodes (issue 12, decision 36),
created at bootstrap of a secure control plane beside RBAC's defaults:

  - Role kubeadm:bootstrap-signer-clusterinfo in kube-public: get the
    ConfigMap cluster-info; bound to User system:anonymous (the REST door lets
    an anonymous request through to the authorizer for that object alone);
  - ClusterRole system:node-bootstrapper (create/get/list/watch
    certificatesigningrequests), bound to the default node token's group
    system:bootstrappers:kubeadm:default-node-token (kubeadm:kubelet-bootstrap).
"""
from __future__ import annotations

from typing import Awaitable, Callable

from google.protobuf.message import Message

from proto.skiff.v1 import rbac_pb2
from skiff import bootstraptoken as bt
from skiff.client import AlreadyExists as ClientAlreadyExists

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
RBAC = "rbac.authorization.k8s.io"


def objects() -> list[Message]:
    role = rbac_pb2.Role(api_version=f"{RBAC}/v1", kind="Role", rules=[rbac_pb2.PolicyRule(
        verbs=["get"], api_groups=[""], resources=["configmaps"], resource_names=[bt.CLUSTER_INFO])])
    role.metadata.name, role.metadata.namespace = "kubeadm:bootstrap-signer-clusterinfo", bt.CLUSTER_INFO_NAMESPACE
    binding = rbac_pb2.RoleBinding(api_version=f"{RBAC}/v1", kind="RoleBinding",
                                   role_ref=rbac_pb2.RoleRef(api_group=RBAC, kind="Role", name=role.metadata.name),
                                   subjects=[rbac_pb2.Subject(kind="User", name=ANONYMOUS, api_group=RBAC)])
    binding.metadata.name, binding.metadata.namespace = role.metadata.name, bt.CLUSTER_INFO_NAMESPACE
    bootstrapper = rbac_pb2.ClusterRole(api_version=f"{RBAC}/v1", kind="ClusterRole", rules=[rbac_pb2.PolicyRule(
        verbs=["create", "get", "list", "watch"], api_groups=["certificates.k8s.io"],
        resources=["certificatesigningrequests"])])
    bootstrapper.metadata.name = "system:node-bootstrapper"
    bootstrapper.metadata.labels["kubernetes.io/bootstrapping"] = "rbac-defaults"
    kubelet_bootstrap = rbac_pb2.ClusterRoleBinding(
        api_version=f"{RBAC}/v1", kind="ClusterRoleBinding",
        role_ref=rbac_pb2.RoleRef(api_group=RBAC, kind="ClusterRole", name=bootstrapper.metadata.name),
        subjects=[rbac_pb2.Subject(kind="Group", name=bt.DEFAULT_GROUP, api_group=RBAC)])
    kubelet_bootstrap.metadata.name = "kubeadm:kubelet-bootstrap"
    return [role, binding, bootstrapper, kubelet_bootstrap]


async def bootstrap(create: Callable[[Message], Awaitable[Message]]) -> None:
    """Create them (idempotent: existing ones are kept, as edited)."""
    from controlplane.store.interface import AlreadyExists
    for obj in objects():
        try:
            await create(obj)
        except (AlreadyExists, ClientAlreadyExists):
            pass
