"""QoS classes and oom_score_adj by Kubernetes' rules (agent/status.py), and
requests defaulted from limits by the API (skiff/api/kinds/pod_features.py)."""
from __future__ import annotations

import pytest

from agent.status import oom_score_adj, qos_class
from proto.skiff.v1 import types_pb2
from skiff.api import kinds

GiB = 1 << 30


def _pod(*containers: dict, init: tuple[dict, ...] = ()) -> types_pb2.Pod:
    pod = types_pb2.Pod()
    for where, specs in ((pod.spec.containers, containers), (pod.spec.init_containers, init)):
        for i, res in enumerate(specs):
            c = where.add(name=f"c{len(where)}-{i}", image="busybox")
            c.resources.limits.update(res.get("limits", {}))
            c.resources.requests.update(res.get("requests", {}))
    return pod


@pytest.mark.parametrize("containers, init, qos", [
    ([{}], (), "BestEffort"),
    ([{"limits": {"ephemeral-storage": "1Gi"}}], (), "BestEffort"),      # only cpu and memory count
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}], (), "Guaranteed"),     # requests default to limits
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1024Mi"}}], (),
     "Guaranteed"),                                                       # equal quantities, other spellings
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}], (), "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}], ({"requests": {"memory": "1Mi"}},), "Burstable"),
    ([{"requests": {"memory": "64Mi"}}, {}], (), "Burstable"),
])
def test_qos_class(containers, init, qos):
    assert qos_class(_pod(*containers, init=init)) == qos


def test_oom_score_adj_by_class():
    guaranteed = _pod({"limits": {"cpu": "1", "memory": "1Gi"}})
    assert oom_score_adj(guaranteed, guaranteed.spec.containers[0], memory_capacity=8 * GiB) == -997
    best = _pod({})
    assert oom_score_adj(best, best.spec.containers[0], memory_capacity=8 * GiB) == 1000
    burst = _pod({"requests": {"memory": "2Gi"}}, {"requests": {"cpu": "1"}}, {"requests": {"memory": "16Gi"}})
    c1, c2, c3 = burst.spec.containers
    assert oom_score_adj(burst, c1, memory_capacity=8 * GiB) == 750
    assert oom_score_adj(burst, c2, memory_capacity=8 * GiB) == 999     # never BestEffort's 1000
    assert oom_score_adj(burst, c3, memory_capacity=8 * GiB) == 3       # never below Guaranteed's


def test_the_api_defaults_requests_to_limits():
    pod = _pod({"limits": {"cpu": "250m", "memory": "64Mi"}, "requests": {"cpu": "100m"}})
    pod.metadata.name = "p"
    defaulted = kinds.kind_named("Pod").strategy.defaults(pod)
    assert dict(defaulted.spec.containers[0].resources.requests) == {"cpu": "100m", "memory": "64Mi"}
