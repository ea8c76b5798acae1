"""The HPA's arithmetic: tolerance, missing and unready pods, windows, policies."""
import pytest

from controlplane.controllers.replicacalc import (MissingRequest, PodSample, Rules, limit_rate,
                                                  replicas_for_resource, stabilize)

UP = Rules(0, "Max", (("Pods", 4, 15), ("Percent", 100, 15)))
DOWN = Rules(300, "Max", (("Percent", 100, 15),))


def pods(*usages, request=100, ready=True):
    return [PodSample(f"p{i}", request, u, ready) for i, u in enumerate(usages)]


def test_within_tolerance_keeps_the_count():
    # 54 % of requests against a 50 % target: a ratio of 1.08, inside 0.1
    assert replicas_for_resource(pods(54, 54), current=2, target_utilization=50).replicas == 2
    # 56 %: 1.12, outside: ceil(1.12 * 2) = 3
    result = replicas_for_resource(pods(56, 56), current=2, target_utilization=50)
    assert (result.replicas, result.utilization) == (3, 56)


def test_scale_down_and_average_value_targets():
    assert replicas_for_resource(pods(10, 10, 10, 10), current=4, target_utilization=50).replicas == 1
    assert replicas_for_resource(pods(300, 300), current=2, target_average=100).replicas == 6


def test_missing_metrics_count_against_the_change():
    # scaling up: the pod without metrics counts as idle: (200+200+0)/300 = 133 % of a 50 % target
    samples = pods(200, 200) + [PodSample("new", 100, None)]
    assert replicas_for_resource(samples, current=3, target_utilization=50).replicas == 8
    # scaling down: it counts as using its whole request, which turns the direction: no change
    samples = pods(10, 10) + [PodSample("quiet", 100, None)]
    assert replicas_for_resource(samples, current=3, target_utilization=50).replicas == 3


def test_unready_pods_count_as_idle_only_when_scaling_up():
    samples = pods(100, 100) + pods(100, ready=False)
    assert replicas_for_resource(samples, current=3, target_utilization=50).replicas == 4   # 200/300/0.5
    samples = pods(10, 10) + pods(100, ready=False)
    assert replicas_for_resource(samples, current=3, target_utilization=50).replicas == 1


def test_a_container_without_a_request_is_an_error():
    with pytest.raises(MissingRequest, match="missing request for cpu in container c of Pod web-1"):
        replicas_for_resource([PodSample("web-1", None, 50, missing_request_in="c")], current=1,
                              target_utilization=50)
    with pytest.raises(LookupError):
        replicas_for_resource([PodSample("web-1", 100, None)], current=1, target_utilization=50)


def test_scale_down_waits_for_the_window_and_scale_up_does_not():
    history = [(0.0, 6), (100.0, 2)]
    assert stabilize(history, desired=1, current=6, now=200.0, up=UP, down=DOWN) == 6   # 6 still in the window
    assert stabilize(history, desired=1, current=6, now=301.0, up=UP, down=DOWN) == 2
    assert stabilize(history, desired=1, current=6, now=401.0, up=UP, down=DOWN) == 1
    assert stabilize([(0.0, 2)], desired=9, current=2, now=10.0, up=UP, down=DOWN) == 9


def test_policies_limit_the_rate_and_the_bounds_clamp():
    kw = dict(min_replicas=1, max_replicas=20, up=UP, down=DOWN, now=100.0, down_events=[])
    # 1 -> 10: the larger of +4 pods and +100 % is 5
    assert limit_rate(10, current=1, up_events=[], **kw)[:2] == (5, "ScaleUpLimit")
    # 3 were added 10 s ago: the period started at 2, so 6 at most
    assert limit_rate(10, current=5, up_events=[(90.0, 3)], **kw)[0] == 6
    assert limit_rate(30, current=19, up_events=[], **kw)[:2] == (20, "TooManyReplicas")
    assert limit_rate(0, current=4, up_events=[], **kw)[:2] == (1, "TooFewReplicas")
    assert limit_rate(3, current=4, up_events=[], **kw)[:2] == (3, "DesiredWithinRange")
    slow_down = Rules(0, "Max", (("Pods", 1, 60),))
    assert limit_rate(1, current=4, up_events=[], min_replicas=1, max_replicas=20, up=UP, down=slow_down,
                      now=100.0, down_events=[])[:2] == (3, "ScaleDownLimit")
