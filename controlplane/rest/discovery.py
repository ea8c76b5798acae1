"""Discovery: which groups, versions and resources this server speaks.

Everything comes from the kinds registry (skiff/api/kinds): a kind's
api_version gives its group and version, its resource and aliases the
resource's names. Served in both forms: aggregated (apidiscovery.k8s.io/v2,
one document for /api and one for /apis, when the client's Accept asks for
it, as kubectl 1.32 does first) and the legacy documents (/api, /apis,
/api/v1, /apis/<group>/<version>).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from skiff.api import kinds

# Kubernetes' category `all` (`kubectl get all`): the workload resources it names, those Skiff serves.
CATEGORY_ALL = frozenset({"pods", "services", "replicationcontrollers", "daemonsets", "deployments", "replicasets",
                          "statefulsets", "jobs", "cronjobs", "horizontalpodautoscalers"})
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
KUBERNETES_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0+skiff", "gitCommit": "",
                      "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z", "goVersion": "python",
                      "compiler": "cpython", "platform": "linux/amd64"}


@dataclass(frozen=True)
class Served:
    """One kind as the REST paths name it."""
    kind: kinds.Kind
    group: str      # "" for the core group
    version: str

    @property
    def resource(self) -> str:
        return self.kind.resource

    @property
    def qualified(self) -> str:
        """`pods`, `deployments.apps`: how Kubernetes' messages name a resource."""
        return f"{self.kind.resource}.{self.group}" if self.group else self.kind.resource

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def scalable(self) -> bool:
        """A kind with spec.replicas and status.replicas has the scale subresource."""
        fields = self.kind.message.DESCRIPTOR.fields_by_name
        return all(part in fields and "replicas" in fields[part].message_type.fields_by_name
                   for part in ("spec", "status"))

    @property
    def has_status(self) -> bool:
        return "status" in self.kind.message.DESCRIPTOR.fields_by_name


def served() -> list[Served]:
    out = []
    for kind in kinds.all_kinds():
        group, _, version = kind.api_version.rpartition("/")
        out.append(Served(kind, group, version))
    return out


def lookup(group: str, version: str, resource: str) -> Served | None:
    return next((s for s in served() if (s.group, s.version, s.resource) == (group, version, resource)), None)


def group_versions() -> dict[str, list[str]]:
    """group -> its versions ("" is the core group)."""
    out: dict[str, list[str]] = {}
    for s in served():
        versions = out.setdefault(s.group, [])
        if s.version not in versions:
            versions.append(s.version)
    return out


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": group_versions().get("", ["v1"]),
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g, vs) for g, vs in sorted(group_versions().items()) if g]}


def api_group(name: str) -> dict[str, Any] | None:
    versions = group_versions().get(name)
    if not name or versions is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    here = [s for s in served() if (s.group, s.version) == (group, version)]
    if not here:
        return None
    resources: list[dict[str, Any]] = []
    for s in here:
        k = s.kind
        short = [a for a in k.aliases if a not in (k.resource, k.name.lower())]
        resources.append({"name": k.resource, "singularName": k.name.lower(), "namespaced": k.namespaced,
                          "kind": k.name, "verbs": VERBS, **({"shortNames": short} if short else {}),
                          **({"categories": ["all"]} if k.resource in CATEGORY_ALL else {})})
        if s.has_status:
            resources.append({"name": f"{k.resource}/status", "singularName": "", "namespaced": k.namespaced,
                              "kind": k.name, "verbs": ["get", "patch", "update"]})
        if s.scalable:
            resources.append({"name": f"{k.resource}/scale", "singularName": "", "namespaced": k.namespaced,
                              "group": "autoscaling", "version": "v1", "kind": "Scale",
                              "verbs": ["get", "patch", "update"]})
    for sub, verbs in LOG_SUBRESOURCES.items():
        owner = next((s for s in here if s.resource == sub.split("/")[0]), None)
        if owner is not None:
            resources.append({"name": sub, "singularName": "", "namespaced": True, "kind": verbs[1],
                              "verbs": verbs[0]})
    for sub in EVICTION_SUBRESOURCES:   # kubectl drain looks for this entry to evict rather than delete
        if any(s.resource == sub.split("/")[0] for s in here):
            resources.append({"name": sub, "singularName": "", "namespaced": True, "group": "policy",
                              "version": "v1", "kind": "Eviction", "verbs": ["create"]})
    for sub in TOKEN_SUBRESOURCES:   # kubectl create token (authentication.k8s.io/v1 TokenRequest)
        if any(s.resource == sub.split("/")[0] for s in here):
            resources.append({"name": sub, "singularName": "", "namespaced": True, "group": "authentication.k8s.io",
                              "version": "v1", "kind": "TokenRequest", "verbs": ["create"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": here[0].group_version,
            "resources": resources}


# Subresources served by a kind-specific handler (the pod's agent): name -> (verbs, kind).
LOG_SUBRESOURCES = {"pods/log": (["get"], "Pod")}
# The eviction subresource (policy/v1 Eviction; controlplane/api/eviction.py).
EVICTION_SUBRESOURCES = ("pods/eviction",)
# The TokenRequest subresource (controlplane/serviceaccounts/tokenrequest.py).
TOKEN_SUBRESOURCES = ("serviceaccounts/token",)


# ---------------------------------------------------------------- aggregated discovery (apidiscovery.k8s.io/v2)

AGGREGATED_MEDIA = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> bool:
    """Whether the client takes the aggregated form (kubectl 1.32 asks for it first)."""
    for part in accept.split(","):
        params = {p.strip().lower() for p in part.split(";")[1:]}
        if {"g=apidiscovery.k8s.io", "v=v2", "as=apigroupdiscoverylist"} <= params:
            return True
    return False


def _aggregated_version(group: str, version: str) -> dict[str, Any]:
    listed = resource_list(group, version) or {"resources": []}
    top = [r for r in listed["resources"] if "/" not in r["name"]]
    out = []
    for r in top:
        subs = [{"subresource": s["name"].split("/", 1)[1],
                 "responseKind": {"group": s.get("group", group), "version": s.get("version", version),
                                  "kind": s["kind"]},
                 "verbs": s["verbs"]}
                for s in listed["resources"] if s["name"].startswith(r["name"] + "/")]
        entry: dict[str, Any] = {"resource": r["name"], "responseKind": {"group": group, "version": version,
                                                                         "kind": r["kind"]},
                                 "scope": "Namespaced" if r["namespaced"] else "Cluster",
                                 "singularResource": r["singularName"], "verbs": r["verbs"]}
        for key in ("shortNames", "categories"):
            if key in r:
                entry[key] = r[key]
        if subs:
            entry["subresources"] = subs
        out.append(entry)
    return {"version": version, "resources": out, "freshness": "Current"}


def aggregated(*, core: bool, extra: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """/api (core=True) or /apis as an APIGroupDiscoveryList; `extra`: groups served
    outside the kinds registry, already in aggregated form."""
    items = []
    for group, versions in sorted(group_versions().items()):
        if (group == "") != core:
            continue
        items.append({"metadata": {"name": group, "creationTimestamp": None},
                      "versions": [_aggregated_version(group, v) for v in versions]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": [*items, *([] if core else extra)]}
