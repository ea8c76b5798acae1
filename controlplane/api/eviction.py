"""A pod's eviction subresource (policy/v1 Eviction): a delete that a
PodDisruptionBudget may refuse. Served by the gRPC `Evict` call and the REST
front door's POST .../pods/NAME/eviction, both through `evict()` here, as
Kubernetes' registry/core/pod/storage/eviction.go:

    pod terminal, Pending or already being deleted  -> deleted, no budget asked
    no budget selects the pod                       -> deleted
    two or more budgets select it                   -> InternalError (500)
    the budget's status is older than its spec      -> TooManyRequests (429)
    not Ready, and the budget is met (IfHealthyBudget) or AlwaysAllow
                                                    -> deleted, nothing spent
    status.disruptionsAllowed == 0                  -> TooManyRequests (429)
    otherwise: disruptionsAllowed - 1 and disruptedPods[pod] = now written to the
    budget's status at its resourceVersion (CAS; a conflict starts over), then the
    pod is deleted gracefully (its own grace period unless the caller gives one).

The disrupted pods entry makes the disruption controller count the pod as
unhealthy until it sees it go (or 2 minutes pass), so two evictions racing
against one stale count never both spend the same disruption.

Only voluntary evictions come here: the node's taint manager and the agent's
pressure eviction delete pods directly and are not bound by budgets, as in
Kubernetes.
"""
from __future__ import annotations

from google.protobuf.message import Message

from controlplane.api.errors import Forbidden, InternalError, TooManyRequests
from controlplane.api.registry import Registry
from controlplane.store import Conflict
from skiff.api import kinds, labelselector, meta

_ATTEMPTS = 5
MAX_DISRUPTED_PODS = 2000  # Kubernetes' MaxDisruptedPodSize
REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."


def ignores_budgets(pod: Message) -> bool:
    """A pod whose eviction disrupts nothing: finished, not started, or already going."""
    return pod.status.phase in ("Succeeded", "Failed", "Pending") or pod.metadata.HasField("deletion_timestamp")


def is_ready(pod: Message) -> bool:
    cond = meta.get_condition(pod.status.conditions, "Ready")
    return cond is not None and cond.status == "True"


def budgets_for(pod: Message, budgets: list[Message]) -> list[Message]:
    """The budgets of the pod's namespace whose selector selects it (empty selects all, as policy/v1)."""
    return [b for b in budgets if b.metadata.namespace == pod.metadata.namespace
            and labelselector.matches(b.spec.selector, pod.metadata.labels)]


def check_budget(pdb: Message) -> None:
    """Raise unless the budget allows one more disruption now (pure)."""
    s = pdb.status
    if s.observed_generation < pdb.metadata.generation:
        raise TooManyRequests(REFUSED, causes=(("DisruptionBudget", f"The disruption budget {pdb.metadata.name} is "
                                                                    f"still being processed by the server."),))
    if s.disruptions_allowed < 0:
        raise Forbidden("pdb disruptions allowed is negative")
    if len(s.disrupted_pods) > MAX_DISRUPTED_PODS:
        raise Forbidden("DisruptedPods map too big - too many evictions not confirmed by PDB controller")
    if s.disruptions_allowed == 0:
        raise TooManyRequests(REFUSED, causes=(("DisruptionBudget", f"The disruption budget {pdb.metadata.name} "
                                                                    f"needs {s.desired_healthy} healthy pods and has "
                                                                    f"{s.current_healthy} currently"),))


def unhealthy_evictable(pod: Message, pdb: Message) -> bool:
    """A not-ready pod that may go without spending a disruption."""
    if is_ready(pod):
        return False
    if pdb.spec.unhealthy_pod_eviction_policy == "AlwaysAllow":
        return True
    s = pdb.status
    return s.observed_generation >= pdb.metadata.generation and s.current_healthy >= s.desired_healthy > 0


async def evict(registry: Registry, namespace: str, name: str, *, grace_period_seconds: int | None = None,
                precondition_uid: str = "", dry_run: bool = False) -> Message:
    """Evict the pod (see the module docstring); returns the pod as deleted or as marked."""
    pod_kind, pdb_kind = kinds.kind_named("Pod"), kinds.kind_named("PodDisruptionBudget")
    namespace = namespace or "default"
    for _ in range(_ATTEMPTS):
        pod = await registry.get(pod_kind, namespace, name)
        if precondition_uid and precondition_uid != pod.metadata.uid:
            raise Conflict(f"Pod {name!r}: precondition failed: uid is {pod.metadata.uid}, "
                           f"request had {precondition_uid}")
        if not ignores_budgets(pod):
            budgets = budgets_for(pod, (await registry.list(pdb_kind, namespace))[0])
            if len(budgets) > 1:
                raise InternalError(MULTIPLE)
            if budgets and not unhealthy_evictable(pod, budgets[0]):
                pdb = meta.copy(budgets[0])
                check_budget(pdb)
                if not dry_run:
                    pdb.status.disruptions_allowed -= 1
                    pdb.status.disrupted_pods[name].CopyFrom(meta.timestamp())
                    try:
                        await registry.update_status(pdb)   # CAS at the budget's resourceVersion
                    except Conflict:
                        continue
        if dry_run:
            return pod
        return await registry.delete(pod_kind, namespace, name, grace_period_seconds=grace_period_seconds,
                                     precondition_uid=pod.metadata.uid)
    raise Conflict(f"the disruption budget of pod {name!r} kept changing during its eviction; try again")
