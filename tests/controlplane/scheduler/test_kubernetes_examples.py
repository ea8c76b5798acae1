"""The plugins and preemption against the examples of Kubernetes' documentation
(concepts/scheduling-eviction: assign-pod-node, topology-spread-constraints,
pod-priority-preemption), as tables; pods and nodes written as manifests."""
from __future__ import annotations

import pytest
from google.protobuf import json_format

from controlplane.scheduler import plugins, preemption
from controlplane.scheduler.cycle import Profile, num_feasible_nodes_to_find, schedule
from controlplane.scheduler.framework import NodeInfo, Snapshot
from controlplane.scheduler.plugins import balanced_allocation, image_locality, least_allocated
from proto.skiff.v1 import types_pb2
from skiff.api import selectors

PROFILE = Profile(plugins.DEFAULT_FILTERS, plugins.DEFAULT_SCORES)
ZONE, HOST = "topology.kubernetes.io/zone", "kubernetes.io/hostname"


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", taints: list | None = None, images: list | None = None,
         **labels: str) -> types_pb2.Node:
    n = json_format.ParseDict({
        "metadata": {"name": name, "labels": {HOST: name, **{k.replace("__", "/").replace("_", "."): v
                                                              for k, v in labels.items()}}},
        "spec": {"taints": taints or []},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}], "images": images or []}},
        types_pb2.Node())
    return n


def zoned(name: str, zone: str, **kw) -> types_pb2.Node:
    n = node(name, **kw)
    n.metadata.labels[ZONE] = zone
    return n


def pod(name: str, spec: dict | None = None, *, labels: dict | None = None, namespace: str = "default",
        cpu: str = "", memory: str = "", priority: int | None = None, start: int = 0, node_name: str = "",
        image: str = "busybox") -> types_pb2.Pod:
    container: dict = {"name": "c", "image": image}
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    if requests:
        container["resources"] = {"requests": requests}
    body = {"containers": [container], **(spec or {})}
    if priority is not None:
        body["priority"] = priority
    p = json_format.ParseDict({"metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                               "spec": body}, types_pb2.Pod())
    if node_name:
        p.spec.node_name = node_name
    if start:
        p.status.start_time.FromSeconds(start)
    return p


def cluster(nodes: list[types_pb2.Node], placed: list[types_pb2.Pod] = (), namespaces: dict | None = None) -> Snapshot:
    return Snapshot([NodeInfo.build(n, [p for p in placed if p.spec.node_name == n.metadata.name]) for n in nodes],
                    namespaces or {})


def feasible(p: types_pb2.Pod, snap: Snapshot) -> set[str]:
    """Every node the filters pass (small clusters: all are evaluated)."""
    d = schedule(p, snap, PROFILE)
    return {n.name for n in snap.nodes} - set(d.statuses)


# ---------------------------------------------------------------- assign-pod-node: node affinity

AFFINITY_EXAMPLE = {"affinity": {"nodeAffinity": {
    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": ZONE, "operator": "In", "values": ["antarctica-east1", "antarctica-west1"]}]}]},
    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {"matchExpressions": [
        {"key": "another-node-label-key", "operator": "In", "values": ["another-node-label-value"]}]}}]}}}


def test_node_affinity_required_and_preferred_docs_example():
    nodes = [zoned("east", "antarctica-east1"), zoned("west", "antarctica-west1"), zoned("north", "arctic-1")]
    nodes[1].metadata.labels["another-node-label-key"] = "another-node-label-value"
    snap = cluster(nodes)
    p = pod("with-node-affinity", AFFINITY_EXAMPLE)
    assert feasible(p, snap) == {"east", "west"}
    d = schedule(p, snap, PROFILE)
    assert d.node_name == "west"    # the preferred term decides between the two
    assert d.scores["west"] - d.scores["east"] == 100 * 2   # normalized 100, NodeAffinity's weight 2
    alone = schedule(p, cluster([nodes[2]]), PROFILE)
    assert alone.message == "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."


def test_node_affinity_weights_docs_example():
    """Two preferred terms, weights 1 and 50: the node with label-2=key-2 wins."""
    spec = {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [{"key": "label-1", "operator": "In", "values": ["key-1"]}]}},
        {"weight": 50, "preference": {"matchExpressions": [{"key": "label-2", "operator": "In",
                                                            "values": ["key-2"]}]}}]}}}
    one, two = node("one"), node("two")
    one.metadata.labels["label-1"] = "key-1"
    two.metadata.labels["label-2"] = "key-2"
    assert schedule(pod("with-affinity-preferred-weight", spec), cluster([one, two]), PROFILE).node_name == "two"


@pytest.mark.parametrize("operator,values,matches", [
    ("In", ["ssd"], {"a"}), ("NotIn", ["ssd"], {"b", "c"}), ("Exists", [], {"a", "b"}),
    ("DoesNotExist", [], {"c"}), ("Gt", ["4"], {"b"}), ("Lt", ["4"], {"a"}),
])
def test_node_affinity_operators(operator, values, matches):
    key = "cores" if operator in ("Gt", "Lt") else "disk"
    nodes = [node("a", disk="ssd", cores="2"), node("b", disk="hdd", cores="8"), node("c")]
    spec = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": key, "operator": operator, "values": values}]}]}}}}
    if operator in ("Gt", "Lt"):
        nodes[2].metadata.labels["cores"] = "4"
    assert feasible(pod("p", spec), cluster(nodes)) == matches


def test_node_affinity_match_fields_and_node_selector():
    spec = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}}
    assert feasible(pod("p", spec), cluster([node("a"), node("b")])) == {"b"}
    assert feasible(pod("p", {"nodeSelector": {"disktype": "ssd"}}),
                    cluster([node("a", disktype="ssd"), node("b")])) == {"a"}


def test_conflicting_node_affinity_is_reported_as_kubernetes_reports_it():
    spec = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]},
                              {"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}]}}}}
    d = schedule(pod("p", spec), cluster([node("a", disk="ssd"), node("b"), node("c")]), PROFILE)
    assert d.message == "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."


# ---------------------------------------------------------------- assign-pod-node: inter-pod affinity

def test_pod_affinity_docs_example():
    """with-pod-affinity: required affinity to security=S1 in the zone, preferred anti-affinity to S2."""
    spec = {"affinity": {
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchExpressions": [{"key": "security", "operator": "In", "values": ["S1"]}]},
             "topologyKey": ZONE}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {
                "labelSelector": {"matchExpressions": [{"key": "security", "operator": "In", "values": ["S2"]}]},
                "topologyKey": ZONE}}]}}}
    nodes = [zoned("a1", "a"), zoned("a2", "a"), zoned("b1", "b"), zoned("c1", "c"), zoned("c2", "c")]
    placed = [pod("s1", labels={"security": "S1"}, node_name="a1"), pod("s1b", labels={"security": "S1"},
                                                                          node_name="c1"),
              pod("s2", labels={"security": "S2"}, node_name="c2")]
    p = pod("with-pod-affinity", spec)
    snap = cluster(nodes, placed)
    assert feasible(p, snap) == {"a1", "a2", "c1", "c2"}     # zones with an S1 pod
    assert schedule(p, snap, PROFILE).node_name in ("a1", "a2")   # zone c holds an S2 pod
    d = schedule(p, cluster([zoned("b1", "b")]), PROFILE)
    assert d.message == "0/1 nodes are available: 1 node(s) didn't match pod affinity rules."


def test_first_pod_of_a_self_affine_group_goes_anywhere():
    spec = {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": ZONE}]}}}
    snap = cluster([zoned("a1", "a"), node("nozone")])
    assert feasible(pod("db-0", spec, labels={"app": "db"}), snap) == {"a1"}   # the key must exist
    assert feasible(pod("other", spec, labels={"app": "web"}), snap) == set()


REDIS = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
    {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["store"]}]},
     "topologyKey": HOST}]}}}
WEB = {"affinity": {
    "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web-store"]}]},
         "topologyKey": HOST}]},
    "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["store"]}]},
         "topologyKey": HOST}]}}}


def test_redis_cache_and_web_store_docs_example():
    """Three redis-cache replicas spread by anti-affinity; three web-store replicas each beside one of them
    and apart from each other: every node gets one of each; a fourth of either fits nowhere."""
    nodes = [node("worker-1"), node("worker-2"), node("worker-3")]
    placed: list[types_pb2.Pod] = []

    def place(p: types_pb2.Pod) -> str | None:
        d = schedule(p, cluster(nodes, placed), PROFILE)
        if d.node_name:
            p.spec.node_name = d.node_name
            placed.append(p)
        return d.node_name

    redis = [place(pod(f"redis-cache-{i}", REDIS, labels={"app": "store"})) for i in range(3)]
    web = [place(pod(f"web-server-{i}", WEB, labels={"app": "web-store"})) for i in range(3)]
    assert sorted(redis) == sorted(web) == ["worker-1", "worker-2", "worker-3"]
    d = schedule(pod("redis-cache-3", REDIS, labels={"app": "store"}), cluster(nodes, placed), PROFILE)
    assert d.message == "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
    # The symmetric rule: a plain app=store pod may not join a node whose redis pod repels it.
    d = schedule(pod("plain", labels={"app": "store"}), cluster(nodes, placed), PROFILE)
    assert d.message == "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules."


def test_affinity_namespaces_and_namespace_selector():
    term = {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": HOST}
    placed = [pod("db", labels={"app": "db"}, namespace="data", node_name="a")]
    nodes = [node("a"), node("b")]
    own_ns = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}}
    assert feasible(pod("p", own_ns), cluster(nodes, placed)) == {"a", "b"}    # default: the pod's namespace
    named = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {**term, "namespaces": ["data"]}]}}}
    assert feasible(pod("p", named), cluster(nodes, placed)) == {"b"}
    selected = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {**term, "namespaceSelector": {"matchLabels": {"team": "data"}}}]}}}
    assert feasible(pod("p", selected), cluster(nodes, placed, {"data": {"team": "data"}})) == {"b"}
    assert feasible(pod("p", selected), cluster(nodes, placed, {"data": {}})) == {"a", "b"}
    every = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {**term, "namespaceSelector": {}}]}}}
    assert feasible(pod("p", every), cluster(nodes, placed)) == {"b"}


def test_preferred_pod_affinity_scores_the_domain():
    spec = {"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": ZONE}}]}}}
    nodes = [zoned("a1", "a"), zoned("b1", "b"), zoned("b2", "b")]
    placed = [pod("cache", labels={"app": "cache"}, node_name="b1")]
    d = schedule(pod("p", spec), cluster(nodes, placed), PROFILE)
    assert d.node_name == "b2"    # same zone as the cache pod, and emptier than b1


# ---------------------------------------------------------------- topology spread constraints

def spread(max_skew: int = 1, key: str = ZONE, when: str = "DoNotSchedule", **extra) -> dict:
    return {"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"foo": "bar"}}, **extra}


def four_nodes() -> tuple[list[types_pb2.Node], list[types_pb2.Pod]]:
    """The docs' cluster: node1, node2 in zoneA, node3, node4 in zoneB; foo=bar pods on node1, node2, node3."""
    nodes = [zoned("node1", "zoneA"), zoned("node2", "zoneA"), zoned("node3", "zoneB"), zoned("node4", "zoneB")]
    placed = [pod(f"p{i}", labels={"foo": "bar"}, node_name=f"node{i}") for i in (1, 2, 3)]
    return nodes, placed


@pytest.mark.parametrize("constraints,expected", [
    ([spread(1)], {"node3", "node4"}),                                       # one constraint: zoneB only
    ([spread(2)], {"node1", "node2", "node3", "node4"}),                     # maxSkew 2: anywhere
    ([spread(1), spread(1, HOST)], {"node4"}),                               # zone and node: node4 only
    ([spread(1, minDomains=3)], set()),                                      # 2 zones < minDomains 3: min is 0
])
def test_topology_spread_docs_examples(constraints, expected):
    nodes, placed = four_nodes()
    p = pod("mypod", {"topologySpreadConstraints": constraints}, labels={"foo": "bar"})
    assert feasible(p, cluster(nodes, placed)) == expected


def test_topology_spread_node_affinity_policy_leaves_excluded_domains_out():
    """The docs' zoneC node excluded by node affinity: its empty domain does not pull the minimum to 0."""
    nodes, placed = four_nodes()
    nodes.append(zoned("node5", "zoneC"))
    spec = {"topologySpreadConstraints": [spread(1)], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": ZONE, "operator": "NotIn", "values": ["zoneC"]}]}]}}}}
    assert feasible(pod("mypod", spec, labels={"foo": "bar"}), cluster(nodes, placed)) == {"node3", "node4"}
    ignored = {**spec, "topologySpreadConstraints": [spread(1, nodeAffinityPolicy="Ignore")]}
    d = schedule(pod("mypod", ignored, labels={"foo": "bar"}), cluster(nodes, placed), PROFILE)
    # zoneC's empty domain counts now: the minimum is 0, zones A (2) and B (1) are both too full.
    assert d.message == ("0/5 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
                         "4 node(s) didn't match pod topology spread constraints.")


def test_topology_spread_missing_key_and_schedule_anyway():
    nodes, placed = four_nodes()
    nodes.append(node("nozone"))
    p = pod("mypod", {"topologySpreadConstraints": [spread(1)]}, labels={"foo": "bar"})
    d = schedule(p, cluster(nodes[2:], placed), PROFILE)
    assert d.node_name == "node4"
    cordoned = zoned("node3", "zoneB")
    cordoned.spec.unschedulable = True       # still a domain with its pod
    crowded = [*placed, pod("p4", labels={"foo": "bar"}, node_name="node1")]
    d = schedule(p, cluster([nodes[0], cordoned, nodes[4]], crowded), PROFILE)
    assert d.message == ("0/3 nodes are available: 1 node(s) didn't match pod topology spread constraints, "
                         "1 node(s) didn't match pod topology spread constraints (missing required label), "
                         "1 node(s) were unschedulable.")
    soft = pod("mypod", {"topologySpreadConstraints": [spread(1, when="ScheduleAnyway")]}, labels={"foo": "bar"})
    assert schedule(soft, cluster(nodes[:4], placed), PROFILE).node_name == "node4"   # the emptiest domain


# ---------------------------------------------------------------- taints, resources, images

def test_taint_toleration_filter_and_prefer_no_schedule_score():
    tainted = node("tainted", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    soft = node("soft", taints=[{"key": "spot", "effect": "PreferNoSchedule"}])
    plain = node("plain")
    d = schedule(pod("p"), cluster([tainted]), PROFILE)
    assert d.message == "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."
    assert schedule(pod("p"), cluster([soft, plain]), PROFILE).node_name == "plain"
    tolerating = pod("p", {"tolerations": [{"key": "spot", "operator": "Exists"}]})
    d = schedule(tolerating, cluster([soft, plain]), PROFILE)
    assert d.scores["soft"] == d.scores["plain"]


def test_least_allocated_and_balanced_allocation_formulas():
    info = NodeInfo.build(node("n", cpu="4", memory="8Gi"), [pod("x", cpu="1", memory="1Gi", node_name="n")])
    p = pod("p", cpu="1", memory="3Gi")
    # cpu (4000-2000)*100/4000 = 50, memory (8-4)*100/8 = 50
    assert least_allocated.score(p, info) == 50
    # fractions cpu 0.5, memory 0.5: perfectly balanced
    assert balanced_allocation.score(p, info) == 100
    skewed = pod("p", cpu="3", memory="1Gi")   # cpu 1.0, memory 0.25: std 0.375
    assert balanced_allocation.score(skewed, info) == 62
    # a container without requests counts 100m / 200Mi when scoring
    assert least_allocated.score(pod("q"), NodeInfo.build(node("n", cpu="1", memory="1Gi"), [])) == (90 + 80) // 2


def test_image_locality_prefers_the_node_with_the_image():
    big = [{"names": ["docker.io/library/app:1", "app:1"], "sizeBytes": 500 * 2**20}]
    nodes = [node("has", images=big), node("lacks")]
    d = schedule(pod("p", image="app:1"), cluster(nodes), PROFILE)
    assert d.node_name == "has"
    plugin = image_locality.ImageLocality()
    snap = cluster(nodes)
    plugin.pre_score(pod("p", image="app:1"), snap, snap.nodes)
    # 500 MiB × 1/2 of the nodes = 250 MiB, scaled between 23 MiB and 1000 MiB
    assert plugin.score(pod("p", image="app:1"), snap.nodes[0]) == 100 * (250 - 23) // (1000 - 23)
    assert image_locality.normalized("busybox") == "busybox:latest"
    assert image_locality.normalized("localhost:5000/app") == "localhost:5000/app:latest"


def test_percentage_of_nodes_to_score():
    assert num_feasible_nodes_to_find(50) == 50
    assert num_feasible_nodes_to_find(1000) == 420       # 50 - 1000/125 = 42 %
    assert num_feasible_nodes_to_find(5000) == 500       # 50 - 40 = 10 %
    assert num_feasible_nodes_to_find(10000) == 500      # at least 5 %
    assert num_feasible_nodes_to_find(150) == 100        # never fewer than 100
    assert num_feasible_nodes_to_find(1000, 100) == 1000
    nodes = [node(f"n{i:03}") for i in range(200)]
    d = schedule(pod("p"), cluster(nodes), PROFILE)
    assert d.evaluated == 100      # 200 nodes: 49 % = 98 -> at least 100 feasible, then stop


# ---------------------------------------------------------------- preemption (pod-priority-preemption)

def run_preemption(p: types_pb2.Pod, nodes: list, placed: list, budgets: list = ()) -> preemption.Outcome:
    snap = cluster(nodes, placed)
    d = schedule(p, snap, PROFILE)
    assert d.node_name is None
    return preemption.preempt(p, snap, d.statuses, PROFILE.filters, budgets)


def test_preemption_evicts_lowest_priority_first_and_reprieves_the_rest():
    nodes = [node("n", cpu="2")]
    placed = [pod("low", cpu="1", priority=10, node_name="n"), pod("mid", cpu="1", priority=100, node_name="n")]
    out = run_preemption(pod("high", cpu="1", priority=1000), nodes, placed)
    assert out.candidate.node == "n" and [v.metadata.name for v in out.candidate.victims] == ["low"]
    both = run_preemption(pod("high", cpu="2", priority=1000), nodes, placed)
    assert [v.metadata.name for v in both.candidate.victims] == ["mid", "low"]


def test_preemption_picks_the_node_with_the_lowest_priority_victims():
    nodes = [node("a", cpu="1"), node("b", cpu="1"), node("c", cpu="1")]
    placed = [pod("a-pod", cpu="1", priority=500, node_name="a"), pod("b-pod", cpu="1", priority=100, node_name="b"),
              pod("c-pod", cpu="1", priority=2000, node_name="c")]
    out = run_preemption(pod("high", cpu="1", priority=1000), nodes, placed)
    assert out.candidate.node == "b"
    assert [v.metadata.name for v in out.candidate.victims] == ["b-pod"]


def test_preemption_prefers_no_pdb_violation_then_fewer_victims():
    nodes = [node("a", cpu="2"), node("b", cpu="2")]
    placed = [pod("guarded", cpu="2", priority=10, labels={"app": "db"}, node_name="a"),
              pod("x", cpu="1", priority=50, node_name="b"), pod("y", cpu="1", priority=50, node_name="b")]
    # A PodDisruptionBudget over app=db with no disruption allowed (what Budget.of reads of one).
    budgets = [preemption.Budget("default", selectors.LabelSelector((selectors.Requirement("app", "=", ("db",)),)), 0)]
    out = run_preemption(pod("high", cpu="2", priority=1000), nodes, placed, budgets)
    assert out.candidate.node == "b" and out.candidate.pdb_violations == 0
    without = run_preemption(pod("high", cpu="2", priority=1000), nodes, placed)
    assert without.candidate.node == "a"     # no budget: the lower highest-victim priority wins


def test_preemption_is_not_helpful_for_unresolvable_nodes_and_never_policy():
    nodes = [node("a", cpu="1", disk="hdd"), node("b", cpu="1"), node("c", cpu="1")]
    placed = [pod(f"{n}-pod", cpu="1", priority=0, node_name=n) for n in ("a", "b", "c")]
    spec = {"nodeSelector": {"disk": "ssd"}}
    out = run_preemption(pod("p", spec, cpu="1", priority=1000), nodes, placed)
    assert out.candidate is None
    assert out.message == "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    never = pod("p", {"preemptionPolicy": "Never"}, cpu="1", priority=1000)
    assert run_preemption(never, nodes, placed).message == "preemption: not eligible due to preemptionPolicy=Never."
    equal = run_preemption(pod("p", cpu="1", priority=0), nodes, placed)
    assert equal.message == ("preemption: 0/3 nodes are available: "
                             "3 No preemption victims found for incoming pod.")


def test_preemption_for_anti_affinity_evicts_the_repelling_pod():
    anti = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": HOST}]}}}
    nodes = [node("a"), node("b")]
    placed = [pod("web-a", labels={"app": "web"}, priority=10, node_name="a"),
              pod("web-b", labels={"app": "web"}, priority=20, node_name="b")]
    out = run_preemption(pod("p", anti, labels={"app": "web"}, priority=1000), nodes, placed)
    assert out.candidate.node == "a" and [v.metadata.name for v in out.candidate.victims] == ["web-a"]
