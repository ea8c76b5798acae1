"""The rolling-update arithmetic against Kubernetes' documented rounding, and
whole rollouts simulated step by step for many replica/surge/unavailable
combinations: every step must keep both bounds, and every rollout must end."""
from __future__ import annotations

import itertools

import pytest

from controlplane.controllers import rollingupdate as ru
from controlplane.controllers.rollingupdate import ReplicaSetState as RS, Strategy


@pytest.mark.parametrize("surge, unavailable, replicas, expected", [
    ("25%", "25%", 10, (3, 2)),   # the docs' example: 2.5 up, 2.5 down
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 3, (1, 0)),
    ("25%", "25%", 1, (1, 0)),
    ("", "", 10, (3, 2)),         # unset means 25% each
    ("1", "0", 4, (1, 0)),
    ("0", "1", 4, (0, 1)),
    ("30%", "30%", 10, (3, 3)),
    ("10%", "10%", 30, (3, 3)),   # exact, no float drift
    ("0%", "10%", 3, (0, 1)),     # both resolve to 0: one may be unavailable
    ("100%", "0", 5, (5, 0)),
    ("2", "50%", 5, (2, 2)),
])
def test_fenceposts_round_surge_up_and_unavailable_down(surge, unavailable, replicas, expected):
    assert ru.resolve_fenceposts(surge, unavailable, replicas) == expected


def test_max_unavailable_is_capped_by_replicas_and_zero_for_recreate():
    assert ru.max_unavailable(Strategy(replicas=2, max_unavailable="5")) == 2
    assert ru.max_unavailable(Strategy(replicas=0)) == 0
    assert ru.max_unavailable(Strategy(replicas=4, rolling=False)) == 0
    assert ru.max_surge(Strategy(replicas=4, rolling=False)) == 0


def test_first_step_grows_the_new_replica_set_by_the_surge():
    s = Strategy(replicas=10)  # surge 3, unavailable 2
    old, new = RS("old", 10, 10, created=1), RS("new", 0, 0, created=2)
    assert ru.reconcile_new(s, [old, new], new) == 3
    # Then the old one may lose 10+3 - 8 - 3 (new ones not yet available) = 2.
    new = RS("new", 3, 0, created=2)
    assert ru.reconcile_old(s, [old, new], [old], new) == {"old": 8}


def test_unhealthy_old_pods_go_first_without_touching_availability():
    s = Strategy(replicas=4, max_surge="0", max_unavailable="1")
    old = RS("old", 4, 2, created=1)  # two of its pods are not available
    new = RS("new", 0, 0, created=2)
    # 4 pods, 3 must stay available, so one may go: an unavailable one.
    assert ru.reconcile_old(s, [old, new], [old], new) == {"old": 3}


def test_oldest_replica_set_scales_down_first():
    s = Strategy(replicas=4, max_surge="0", max_unavailable="2")
    older, old, new = RS("a", 2, 2, created=1), RS("b", 2, 2, created=2), RS("c", 0, 0, created=3)
    assert ru.reconcile_old(s, [older, old, new], [older, old], new) == {"a": 0}


def test_new_replica_set_above_the_deployment_is_cut_back():
    s = Strategy(replicas=2)
    new = RS("new", 5, 5)
    assert ru.reconcile_new(s, [new], new) == 2


def test_recreate_takes_every_old_replica_set_to_zero_and_new_to_full():
    s = Strategy(replicas=3, rolling=False)
    assert ru.recreate_old([RS("a", 3, 3), RS("b", 0)]) == {"a": 0}
    assert ru.new_replica_set_replicas(s, [RS("a", 0), RS("n", 0)], 0) == 3


def _simulate(replicas: int, surge: str, unavailable: str, *, lag: int) -> int:
    """Roll `replicas` pods from one ReplicaSet to another. A pod becomes
    available `lag` steps after its ReplicaSet asks for it; a scaled-down pod
    stops counting at once. Returns the number of steps taken."""
    s = Strategy(replicas=replicas, max_surge=surge, max_unavailable=unavailable)
    max_total = replicas + ru.max_surge(s)
    min_available = replicas - ru.max_unavailable(s)
    # pods per ReplicaSet: list of ages (steps since asked for)
    pods = {"old": [lag] * replicas, "new": []}
    spec = {"old": replicas, "new": 0}
    created = {"old": 1.0, "new": 2.0}

    def state(name: str) -> RS:
        available = sum(1 for age in pods[name] if age >= lag)
        return RS(name, spec[name], available, created=created[name])

    for step in range(1000):
        all_rs = [state("old"), state("new")]
        new = all_rs[1]
        if new.replicas == replicas and new.available == replicas and spec["old"] == 0:
            return step
        target = ru.reconcile_new(s, all_rs, new)
        if target is not None:
            spec["new"] = target
        else:
            for name, n in ru.reconcile_old(s, all_rs, [all_rs[0]], new).items():
                spec[name] = n
        # The ReplicaSet controllers act: pods follow spec; the least available go first.
        for name in pods:
            pods[name].sort(reverse=True)
            del pods[name][spec[name]:]
            pods[name] += [0] * (spec[name] - len(pods[name]))
        assert sum(spec.values()) <= max_total, (step, spec)
        available = sum(1 for name in pods for age in pods[name] if age >= lag)
        assert available >= min_available, (step, spec, pods)
        for name in pods:
            pods[name] = [age + 1 for age in pods[name]]
    raise AssertionError(f"rollout of {replicas} ({surge}, {unavailable}) never finished")


@pytest.mark.parametrize("replicas, surge, unavailable", [
    (r, s, u)
    for r, s, u in itertools.product((1, 2, 3, 4, 5, 10, 13), ("0", "1", "3", "25%", "50%", "100%"),
                                     ("0", "1", "2", "25%", "50%", "100%"))
    if not (s == "0" and u == "0")
])
@pytest.mark.parametrize("lag", [0, 1, 3])
def test_simulated_rollout_keeps_both_bounds_and_finishes(replicas, surge, unavailable, lag):
    _simulate(replicas, surge, unavailable, lag=lag)


def test_scaling_with_one_active_replica_set_resizes_it():
    s = Strategy(replicas=5)
    assert ru.scale(s, RS("n", 3, 3), [RS("o", 0)], new_saturated=False, status_replicas=3) == {"n": 5}


def test_saturated_new_replica_set_lets_old_ones_go():
    s = Strategy(replicas=3)
    assert ru.scale(s, RS("n", 3, 3, desired_annotation=3), [RS("o", 1, 1)], new_saturated=True,
                    status_replicas=4) == {"o": 0}


def test_proportional_scaling_mid_rollout():
    # The Kubernetes docs' example ("Proportional scaling"): 10 replicas,
    # maxSurge 3, maxUnavailable 2, a rollout stuck with 8 old and 5 new pods,
    # scaled to 15: 15+3 = 18 allowed, 5 more, "3 replicas are added to the
    # old ReplicaSet and 2 replicas are added to the new ReplicaSet".
    s = Strategy(replicas=15, max_surge="3", max_unavailable="2")
    old = RS("old", 8, 8, created=1, desired_annotation=10, max_annotation=13)
    new = RS("new", 5, 0, created=2, desired_annotation=10, max_annotation=13)
    changes = ru.scale(s, new, [old], new_saturated=False, status_replicas=13)
    assert changes == {"old": 11, "new": 7}


def test_scaling_event_is_a_replica_set_made_for_another_size():
    s = Strategy(replicas=5)
    assert ru.is_scaling_event(s, [RS("a", 3, desired_annotation=3)])
    assert not ru.is_scaling_event(s, [RS("a", 3, desired_annotation=5)])
