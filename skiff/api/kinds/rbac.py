"""RBAC (rbac.authorization.k8s.io/v1): Role and RoleBinding (namespaced),
ClusterRole and ClusterRoleBinding (cluster-scoped), issue 12, decision 32.

A rule grants verbs on resources (optionally "resource/subresource", "*")
in API groups, optionally only for some resourceNames; cluster roles may also
grant nonResourceURLs. A binding gives one role to subjects (User, Group,
ServiceAccount); its roleRef cannot change (Kubernetes: delete and recreate).
Checks and wording as Kubernetes' ValidateRole/ValidateRoleBinding. The
evaluation is the API server's (controlplane/rbac.py); the default roles
(cluster-admin, admin, edit, view) are `DEFAULT_CLUSTER_ROLES` below, created
at bootstrap.
"""
from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import rbac_pb2
from skiff.api import describing, humanize
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy
from skiff.api.validation import FieldError

GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("User", "Group", "ServiceAccount")
READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")


def _rule(verbs, groups, resources) -> rbac_pb2.PolicyRule:
    return rbac_pb2.PolicyRule(verbs=list(verbs), api_groups=list(groups), resources=list(resources))


# Kubernetes' user-facing roles, without aggregation: what each grants, by API group.
_VIEWABLE = [("", ("pods", "pods/log", "pods/status", "services", "services/status", "endpoints", "configmaps",
                   "persistentvolumeclaims", "replicationcontrollers", "events", "limitranges", "resourcequotas",
                   "serviceaccounts", "namespaces", "namespaces/status")),
             ("apps", ("deployments", "deployments/scale", "deployments/status", "replicasets", "replicasets/scale",
                       "replicasets/status", "daemonsets", "daemonsets/status", "statefulsets")),
             ("batch", ("jobs", "jobs/status", "cronjobs", "cronjobs/status")),
             ("autoscaling", ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
             ("policy", ("poddisruptionbudgets", "poddisruptionbudgets/status")),
             ("networking.k8s.io", ("networkpolicies", "ingresses")),
             ("discovery.k8s.io", ("endpointslices",))]
_EDITABLE = [("", ("pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "pods/eviction",
                   "services", "endpoints", "configmaps", "secrets", "persistentvolumeclaims", "events",
                   "replicationcontrollers", "serviceaccounts")),
             ("apps", ("deployments", "deployments/scale", "replicasets", "replicasets/scale", "daemonsets",
                       "statefulsets")),
             ("batch", ("jobs", "cronjobs")),
             ("autoscaling", ("horizontalpodautoscalers",)),
             ("policy", ("poddisruptionbudgets",)),
             ("networking.k8s.io", ("networkpolicies", "ingresses")),
             ("discovery.k8s.io", ("endpointslices",))]


def _role(name: str, rules: list[rbac_pb2.PolicyRule]) -> rbac_pb2.ClusterRole:
    role = rbac_pb2.ClusterRole(api_version=f"{GROUP}/v1", kind="ClusterRole", rules=rules)
    role.metadata.name = name
    role.metadata.labels["kubernetes.io/bootstrapping"] = "rbac-defaults"
    return role


def default_cluster_roles() -> list[rbac_pb2.ClusterRole]:
    view = [_rule(READ, [g], r) for g, r in _VIEWABLE]
    edit = view + [_rule(WRITE, [g], r) for g, r in _EDITABLE] + [_rule(READ, [""], ["secrets"])]
    admin = edit + [_rule(READ + WRITE, [GROUP], ["roles", "rolebindings"])]
    cluster_admin = [_rule(["*"], ["*"], ["*"]), rbac_pb2.PolicyRule(verbs=["*"], non_resource_urls=["*"])]
    return [_role("cluster-admin", cluster_admin), _role("admin", admin), _role("edit", edit), _role("view", view)]


def default_cluster_role_bindings() -> list[rbac_pb2.ClusterRoleBinding]:
    """system:masters is cluster-admin (as Kubernetes' bootstrap policy)."""
    binding = rbac_pb2.ClusterRoleBinding(api_version=f"{GROUP}/v1", kind="ClusterRoleBinding",
                                          role_ref=rbac_pb2.RoleRef(api_group=GROUP, kind="ClusterRole",
                                                                    name="cluster-admin"),
                                          subjects=[rbac_pb2.Subject(kind="Group", api_group=GROUP,
                                                                     name="system:masters")])
    binding.metadata.name = "cluster-admin"
    binding.metadata.labels["kubernetes.io/bootstrapping"] = "rbac-defaults"
    return [binding]


def _name_errors(obj: Message, errors: list[FieldError]) -> list[FieldError]:
    """RBAC objects are named like path segments (Kubernetes' ValidateRBACName), not DNS subdomains:
    `system:node-bootstrapper`, `kubeadm:bootstrap-signer-clusterinfo` (decision 36)."""
    name = obj.metadata.name
    kept = [e for e in errors if e.path != "metadata.name"]
    if not name:
        return [*kept, *(e for e in errors if e.path == "metadata.name")]
    if name in (".", "..") or "/" in name or "%" in name:
        kept.append(FieldError("metadata.name", f"Invalid value: {name!r}: may not be '.' or '..' and may not "
                                                "contain '/' or '%'"))
    return kept


def _rule_errors(rules, *, cluster: bool) -> list[FieldError]:
    errors = []
    for i, rule in enumerate(rules):
        path = f"rules[{i}]"
        if not rule.verbs:
            errors.append(FieldError(f"{path}.verbs", "Required value: verbs must contain at least one value"))
        if rule.non_resource_urls:
            if not cluster:
                errors.append(FieldError(f"{path}.nonResourceURLs", "Invalid value: namespaced rules cannot apply "
                                                                    "to non-resource URLs"))
            if rule.api_groups or rule.resources or rule.resource_names:
                errors.append(FieldError(f"{path}.nonResourceURLs", "Invalid value: rules cannot apply to both "
                                                                    "regular resources and non-resource URLs"))
        elif not rule.api_groups:
            errors.append(FieldError(f"{path}.apiGroups", "Required value: resource rules must supply at least one "
                                                          "api group"))
        elif not rule.resources:
            errors.append(FieldError(f"{path}.resources", "Required value: resource rules must supply at least one "
                                                          "resource"))
    return errors


class RoleStrategy(Strategy):
    def validate(self, obj: Message) -> list[FieldError]:
        return _name_errors(obj, super().validate(obj)) + _rule_errors(obj.rules, cluster=not self.kind.namespaced)

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "CREATED AT"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        return [obj.metadata.name, describing.ts(obj.metadata.creation_timestamp)]

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        describing.header(text, obj)
        text.multiline("PolicyRule", "")
        rows = [["Resources", "Non-Resource URLs", "Resource Names", "Verbs"]]
        for rule in obj.rules:
            resources = [f"{r}.{g}" if g else r for g in (rule.api_groups or [""]) for r in rule.resources]
            rows.append([", ".join(resources), f"[{' '.join(rule.non_resource_urls)}]",
                         f"[{' '.join(rule.resource_names)}]", f"[{' '.join(rule.verbs)}]"])
        return str(text) + humanize.format_table(rows)


class BindingStrategy(Strategy):
    immutable_fields = ("roleRef",)

    def validate(self, obj: Message) -> list[FieldError]:
        errors = _name_errors(obj, super().validate(obj))
        ref = obj.role_ref
        kinds = ("Role", "ClusterRole") if self.kind.namespaced else ("ClusterRole",)
        if ref.api_group != GROUP:
            errors.append(FieldError("roleRef.apiGroup", f'Unsupported value: "{ref.api_group}": supported values: '
                                                         f'"{GROUP}"'))
        if ref.kind not in kinds:
            errors.append(FieldError("roleRef.kind", f'Unsupported value: "{ref.kind}": supported values: '
                                                     + ", ".join(f'"{k}"' for k in kinds)))
        if not ref.name:
            errors.append(FieldError("roleRef.name", "Required value"))
        for i, subject in enumerate(obj.subjects):
            path = f"subjects[{i}]"
            if subject.kind not in SUBJECT_KINDS:
                errors.append(FieldError(f"{path}.kind", f'Unsupported value: "{subject.kind}": supported values: '
                                                         '"ServiceAccount", "User", "Group"'))
            if not subject.name:
                errors.append(FieldError(f"{path}.name", "Required value"))
            if subject.kind == "ServiceAccount" and not subject.namespace and not self.kind.namespaced:
                errors.append(FieldError(f"{path}.namespace", "Required value"))
        return errors

    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        for subject in obj.subjects:   # Kubernetes' SetDefaults_Subject
            if not subject.api_group and subject.kind in ("User", "Group"):
                subject.api_group = GROUP
        return obj

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "ROLE", "AGE", *(["USERS", "GROUPS", "SERVICEACCOUNTS"] if wide else [])]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        row = [obj.metadata.name, f"{obj.role_ref.kind}/{obj.role_ref.name}",
               humanize.age(obj.metadata.creation_timestamp, now=now)]
        if wide:
            def names(kind: str) -> str:
                return ", ".join(f"{s.namespace}/{s.name}" if kind == "ServiceAccount" else s.name
                                 for s in obj.subjects if s.kind == kind)
            row += [names("User"), names("Group"), names("ServiceAccount")]
        return row

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        describing.header(text, obj)
        text.multiline("Role", "")
        text.multiline("  Kind", obj.role_ref.kind)
        text.multiline("  Name", obj.role_ref.name)
        text.multiline("Subjects", "")
        rows = [["Kind", "Name", "Namespace"]] + [[s.kind, s.name, s.namespace] for s in obj.subjects]
        return str(text) + humanize.format_table(rows)


ROLE = Kind("Role", f"{GROUP}/v1", "roles", "role", rbac_pb2.Role, True, ("role",), strategy=RoleStrategy())
CLUSTER_ROLE = Kind("ClusterRole", f"{GROUP}/v1", "clusterroles", "cluster_role", rbac_pb2.ClusterRole, False,
                    ("clusterrole",), strategy=RoleStrategy())
ROLE_BINDING = Kind("RoleBinding", f"{GROUP}/v1", "rolebindings", "role_binding", rbac_pb2.RoleBinding, True,
                    ("rolebinding",), strategy=BindingStrategy())
CLUSTER_ROLE_BINDING = Kind("ClusterRoleBinding", f"{GROUP}/v1", "clusterrolebindings", "cluster_role_binding",
                            rbac_pb2.ClusterRoleBinding, False, ("clusterrolebinding",), strategy=BindingStrategy())
KINDS = (ROLE, CLUSTER_ROLE, ROLE_BINDING, CLUSTER_ROLE_BINDING)
