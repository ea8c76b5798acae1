"""The HorizontalPodAutoscaler's arithmetic, pure (no API, no clock): what
Kubernetes' replica_calculator.go and the behavior half of horizontal.go do.

    replicas_for_resource  one metric -> a replica count (tolerance, missing
                           and unready pods as Kubernetes treats them)
    stabilize              the recommendation windows (scale-up: the lowest
                           recommendation of its window; scale-down: the highest)
    limit_rate             the scaling policies (Pods/Percent per period,
                           selectPolicy) and minReplicas/maxReplicas

Usage and requests are plain numbers in one unit (millicores or bytes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

TOLERANCE = 0.1


class MissingRequest(Exception):
    """A container of a target pod has no request for the metric's resource."""


@dataclass(frozen=True)
class PodSample:
    name: str
    request: int | None      # sum of the containers' requests (None: one has none)
    usage: int | None        # None: no metrics for this pod
    ready: bool = True
    missing_request_in: str = ""   # the container without a request, for the message


@dataclass(frozen=True)
class MetricResult:
    replicas: int
    utilization: int | None  # percent of requests (Utilization targets)
    average: int             # usage per pod with metrics


def replicas_for_resource(pods: Sequence[PodSample], *, current: int, resource: str = "cpu",
                          target_utilization: int | None = None, target_average: int | None = None) -> MetricResult:
    """Kubernetes' GetResourceReplicas / GetRawResourceReplicas: the usage
    ratio of the pods with metrics; within TOLERANCE of 1 nothing changes.
    When pods lack metrics (or, scaling up, are not ready), they are assumed
    to use 100 % of the target when scaling down and 0 when scaling up, and a
    change of direction after that keeps the current count."""
    if target_utilization is not None:
        for pod in pods:
            if pod.request is None:
                raise MissingRequest(f"missing request for {resource} in container {pod.missing_request_in} "
                                     f"of Pod {pod.name}")
    measured = [p for p in pods if p.usage is not None and p.ready]
    missing = [p for p in pods if p.usage is None]
    unready = [p for p in pods if p.usage is not None and not p.ready]
    if not measured:
        raise LookupError("did not receive metrics for targeted pods (pods might be unready)")

    def ratio_of(samples: Sequence[tuple[int, int]]) -> tuple[float, int | None, int]:
        usage = sum(u for u, _ in samples)
        if target_utilization is not None:
            requests = sum(r for _, r in samples)
            utilization = usage * 100 / requests if requests else 0.0
            return utilization / target_utilization, int(utilization), usage // len(samples)
        average = usage / len(samples)
        return average / target_average, None, int(average)

    base = [(p.usage, p.request or 0) for p in measured]
    ratio, utilization, average = ratio_of(base)
    rebalance_unready = bool(unready) and ratio > 1.0
    if not missing and not rebalance_unready:
        if abs(1.0 - ratio) <= TOLERANCE:
            return MetricResult(current, utilization, average)
        return MetricResult(math.ceil(ratio * len(measured)), utilization, average)

    filled = list(base)
    for p in missing:
        if ratio < 1.0:   # scaling down: a pod without metrics counts as using its request (or the target)
            filled.append((p.request or 0, p.request or 0) if target_utilization is not None
                          else (target_average, 0))
        else:             # scaling up: as idle
            filled.append((0, p.request or 0))
    if rebalance_unready:
        filled += [(0, p.request or 0) for p in unready]
    new_ratio, _, _ = ratio_of(filled)
    if abs(1.0 - new_ratio) <= TOLERANCE or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return MetricResult(current, utilization, average)
    proposed = math.ceil(new_ratio * len(filled))
    if (new_ratio < 1.0 and proposed > current) or (new_ratio > 1.0 and proposed < current):
        return MetricResult(current, utilization, average)
    return MetricResult(proposed, utilization, average)


@dataclass(frozen=True)
class Rules:
    """One direction of spec.behavior (defaults applied by the API)."""
    window_seconds: int
    select_policy: str                        # Max, Min, Disabled
    policies: tuple[tuple[str, int, int], ...]  # (Pods|Percent, value, periodSeconds)


def stabilize(recommendations: Sequence[tuple[float, int]], *, desired: int, current: int, now: float,
              up: Rules, down: Rules) -> int:
    """Kubernetes' stabilizeRecommendationWithBehaviors: scale up no further
    than the lowest recommendation of the scale-up window, and down no
    further than the highest of the scale-down window (the newest, `desired`,
    included)."""
    up_rec = down_rec = desired
    for at, replicas in recommendations:
        if at > now - up.window_seconds:
            up_rec = min(up_rec, replicas)
        if at > now - down.window_seconds:
            down_rec = max(down_rec, replicas)
    recommendation = current
    if recommendation < up_rec:
        recommendation = up_rec
    if recommendation > down_rec:
        recommendation = down_rec
    return recommendation


def _changed_in(events: Sequence[tuple[float, int]], *, period: int, now: float) -> int:
    return sum(change for at, change in events if at > now - period)


def scale_up_limit(current: int, events: Sequence[tuple[float, int]], rules: Rules, *, now: float) -> int:
    if rules.select_policy == "Disabled":
        return current
    pick = max if rules.select_policy != "Min" else min
    limits = []
    for type_, value, period in rules.policies:
        start = current - _changed_in(events, period=period, now=now)
        limits.append(start + value if type_ == "Pods" else math.ceil(start * (1 + value / 100)))
    return pick(limits) if limits else current


def scale_down_limit(current: int, events: Sequence[tuple[float, int]], rules: Rules, *, now: float) -> int:
    if rules.select_policy == "Disabled":
        return current
    pick = min if rules.select_policy != "Min" else max
    limits = []
    for type_, value, period in rules.policies:
        start = current + _changed_in(events, period=period, now=now)
        limits.append(start - value if type_ == "Pods" else math.floor(start * (1 - value / 100)))
    return pick(limits) if limits else current


def limit_rate(desired: int, *, current: int, min_replicas: int, max_replicas: int,
               up_events: Sequence[tuple[float, int]], down_events: Sequence[tuple[float, int]],
               up: Rules, down: Rules, now: float) -> tuple[int, str, str]:
    """Kubernetes' convertDesiredReplicasWithBehaviorRate: the policies' and
    the bounds' limit -> (replicas, ScalingLimited reason, message); the
    reason is DesiredWithinRange when nothing limited it."""
    if desired > current:
        limit = max(scale_up_limit(current, up_events, up, now=now), current)
        if max_replicas < limit:
            if desired > max_replicas:
                return max_replicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
            return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
        if desired > limit:
            return limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
    elif desired < current:
        limit = min(scale_down_limit(current, down_events, down, now=now), current)
        if min_replicas > limit:
            if desired < min_replicas:
                return min_replicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
            return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
        if desired < limit:
            return limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
    if desired > max_replicas:
        return max_replicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
    if desired < min_replicas:
        return min_replicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
