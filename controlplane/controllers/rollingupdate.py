"""A Deployment's scaling arithmetic, pure: how far the new ReplicaSet may grow
and the old ones shrink in one step, as Kubernetes' deployment controller
computes it (`rolling.go`, `util/deployment_util.go`).

The inputs are plain numbers (`ReplicaSetState`: spec.replicas,
status.availableReplicas, creation order), the outputs are the new
spec.replicas of the ReplicaSets to change; the controller applies them and
comes back when the ReplicaSets' status moves. Each step keeps the two bounds
of a rolling update:

    pods (spec.replicas summed)   <= replicas + maxSurge       (maxSurge rounded up)
    available pods                >= replicas - maxUnavailable (maxUnavailable rounded down)

Scaling a Deployment in mid-rollout spreads the change over its active
ReplicaSets in proportion to their sizes (`proportional_scale`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from skiff.api import intstr

DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"


@dataclass(frozen=True)
class ReplicaSetState:
    name: str
    replicas: int            # spec.replicas
    available: int = 0       # status.availableReplicas
    created: float = 0.0     # creation time: older ReplicaSets are scaled down first
    desired_annotation: int | None = None  # deployment.kubernetes.io/desired-replicas
    max_annotation: int | None = None      # deployment.kubernetes.io/max-replicas


@dataclass(frozen=True)
class Strategy:
    """What the arithmetic needs from a Deployment's spec."""
    replicas: int
    rolling: bool = True                   # False: Recreate
    max_surge: str = DEFAULT_MAX_SURGE
    max_unavailable: str = DEFAULT_MAX_UNAVAILABLE


def resolve_fenceposts(max_surge: str, max_unavailable: str, desired: int) -> tuple[int, int]:
    """(surge, unavailable) as counts: surge rounded up, unavailable down; if
    both come out 0 (e.g. 10% of 3 pods and 0), one pod may be unavailable, or
    the rollout could never move."""
    surge = intstr.scaled(max_surge or DEFAULT_MAX_SURGE, desired, round_up=True)
    unavailable = intstr.scaled(max_unavailable or DEFAULT_MAX_UNAVAILABLE, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(s: Strategy) -> int:
    if not s.rolling or s.replicas == 0:
        return 0
    _, unavailable = resolve_fenceposts(s.max_surge, s.max_unavailable, s.replicas)
    return min(unavailable, s.replicas)


def max_surge(s: Strategy) -> int:
    if not s.rolling:
        return 0
    surge, _ = resolve_fenceposts(s.max_surge, s.max_unavailable, s.replicas)
    return surge


def total(replica_sets: Sequence[ReplicaSetState]) -> int:
    return sum(rs.replicas for rs in replica_sets)


def new_replica_set_replicas(s: Strategy, all_rs: Sequence[ReplicaSetState], new_replicas: int) -> int:
    """The new ReplicaSet's size for this step (`NewRSNewReplicas`): grow into
    the room maxSurge leaves, never past the Deployment's replicas."""
    if not s.rolling:
        return s.replicas
    max_total = s.replicas + max_surge(s)
    current = total(all_rs)
    if current >= max_total:
        return new_replicas
    return new_replicas + min(max_total - current, s.replicas - new_replicas)


def reconcile_new(s: Strategy, all_rs: Sequence[ReplicaSetState], new: ReplicaSetState) -> int | None:
    """The new ReplicaSet's next spec.replicas, or None to leave it."""
    if new.replicas == s.replicas:
        return None
    if new.replicas > s.replicas:
        return s.replicas
    target = new_replica_set_replicas(s, all_rs, new.replicas)
    return None if target == new.replicas else target


def reconcile_old(s: Strategy, all_rs: Sequence[ReplicaSetState], old_rs: Sequence[ReplicaSetState],
                  new: ReplicaSetState | None) -> dict[str, int]:
    """The old ReplicaSets' next spec.replicas (`reconcileOldReplicaSets`): first
    drop their unavailable pods (they count for nothing), then available ones,
    oldest ReplicaSet first, as far as minAvailable allows."""
    if total(old_rs) == 0:
        return {}
    min_available = s.replicas - max_unavailable(s)
    new_unavailable = max(0, new.replicas - new.available) if new is not None else 0
    # The new ReplicaSet's unavailable pods may become available soon; do not
    # count on them, but do not scale old ones down for them either.
    max_scaled_down = total(all_rs) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    changes: dict[str, int] = {}
    cleaned = _cleanup_unhealthy(old_rs, max_scaled_down, changes)
    current_all = [*cleaned, *([new] if new is not None else [])]
    _scale_down_available(s, current_all, cleaned, changes)
    return changes


def _by_age(replica_sets: Sequence[ReplicaSetState]) -> list[ReplicaSetState]:
    return sorted(replica_sets, key=lambda rs: (rs.created, rs.name))


def _cleanup_unhealthy(old_rs: Sequence[ReplicaSetState], max_cleanup: int,
                       changes: dict[str, int]) -> list[ReplicaSetState]:
    out, done = [], 0
    for rs in _by_age(old_rs):
        if done < max_cleanup and rs.replicas != 0 and rs.replicas > rs.available:
            down = min(max_cleanup - done, rs.replicas - rs.available)
            rs = replace(rs, replicas=rs.replicas - down)
            changes[rs.name] = rs.replicas
            done += down
        out.append(rs)
    return out


def _scale_down_available(s: Strategy, all_rs: Sequence[ReplicaSetState], old_rs: Sequence[ReplicaSetState],
                          changes: dict[str, int]) -> None:
    min_available = s.replicas - max_unavailable(s)
    # Availability as last reported, capped by what each ReplicaSet is now asked for.
    available = sum(min(rs.available, rs.replicas) for rs in all_rs)
    if available <= min_available:
        return
    budget = available - min_available
    for rs in _by_age(old_rs):
        if budget <= 0:
            break
        if rs.replicas == 0:
            continue
        down = min(rs.replicas, budget)
        changes[rs.name] = rs.replicas - down
        budget -= down


def recreate_old(old_rs: Sequence[ReplicaSetState]) -> dict[str, int]:
    """Recreate: every old ReplicaSet to 0 before the new one grows."""
    return {rs.name: 0 for rs in old_rs if rs.replicas != 0}


def find_active_or_latest(new: ReplicaSetState | None, old_rs: Sequence[ReplicaSetState]) -> ReplicaSetState | None:
    """The one ReplicaSet with pods, or the newest when none has any; None
    when several have pods."""
    everyone = [*([new] if new is not None else []), *old_rs]
    active = [rs for rs in everyone if rs.replicas > 0]
    if len(active) == 1:
        return active[0]
    if not active and everyone:
        return new if new is not None else max(old_rs, key=lambda rs: (rs.created, rs.name))
    return None


def scale(s: Strategy, new: ReplicaSetState | None, old_rs: Sequence[ReplicaSetState], *,
          new_saturated: bool, status_replicas: int) -> dict[str, int]:
    """Kubernetes' `scale`: a Deployment whose replicas changed (or that is
    paused) brings its ReplicaSets to the new size without rolling. One active
    ReplicaSet takes the whole size; a saturated new one lets the old ones go;
    otherwise the change in allowed pods (replicas + maxSurge) is spread over
    the active ReplicaSets in proportion to the size each was made for (the
    max-replicas annotation), leftovers to the largest."""
    only = find_active_or_latest(new, old_rs)
    if only is not None:
        return {} if only.replicas == s.replicas else {only.name: s.replicas}
    if new is not None and new_saturated:
        return recreate_old(old_rs)
    if not s.rolling:
        return {}
    active = [rs for rs in [*([new] if new is not None else []), *old_rs] if rs.replicas > 0]
    to_add = s.replicas + max_surge(s) - total(active)
    if to_add == 0:
        return {}
    # Largest first; among equals the newest when growing, the oldest when shrinking.
    sign = -1 if to_add > 0 else 1
    ordered = sorted(active, key=lambda rs: (-rs.replicas, sign * rs.created, rs.name))
    sizes, added = {}, 0
    for rs in ordered:
        proportion = 0
        if to_add != added:
            fraction = _fraction(s, rs, status_replicas)
            allowed = to_add - added
            proportion = min(fraction, allowed) if to_add > 0 else max(fraction, allowed)
        sizes[rs.name] = rs.replicas + proportion
        added += proportion
    sizes[ordered[0].name] = max(0, sizes[ordered[0].name] + to_add - added)
    return {rs.name: sizes[rs.name] for rs in ordered if sizes[rs.name] != rs.replicas}


def _fraction(s: Strategy, rs: ReplicaSetState, status_replicas: int) -> int:
    if s.replicas == 0:
        return -rs.replicas
    allowed = s.replicas + max_surge(s)
    made_for = rs.max_annotation or status_replicas
    if not made_for:
        return 0
    exact = rs.replicas * allowed / made_for
    return int(exact + 0.5) - rs.replicas  # round half away from zero (sizes are positive)


def is_scaling_event(s: Strategy, active: Sequence[ReplicaSetState]) -> bool:
    """The Deployment's replicas differ from what an active ReplicaSet was made for."""
    return any(rs.desired_annotation is not None and rs.desired_annotation != s.replicas for rs in active)
