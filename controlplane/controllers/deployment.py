"""The Deployment controller: rolls a Deployment's pod template out through one
ReplicaSet per template (Kubernetes' `deployment_controller.go`, `sync.go`,
`rolling.go`, `recreate.go`, `progress.go`).

    Deployment / its ReplicaSets / their pods change ─► enqueue(deployment) ─► reconcile:
        claim ReplicaSets (ownership.py)
        paused, or replicas changed          ─► scale (proportionally), status
        Recreate                             ─► old ReplicaSets to 0, wait for their pods
                                                to be gone, then the new one to full size
        RollingUpdate                        ─► grow the new ReplicaSet into maxSurge,
                                                shrink the old ones down to minAvailable
                                                (rollingupdate.py is the arithmetic)
        status: counts, Available, Progressing (ProgressDeadlineExceeded past the deadline),
                ReplicaFailure copied from the ReplicaSets; old ReplicaSets beyond
                revisionHistoryLimit deleted once the rollout is complete

The new ReplicaSet is the one whose template equals the Deployment's (its
pod-template-hash label aside); it gets the next revision
(`deployment.kubernetes.io/revision`), which the Deployment carries too.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from google.protobuf.message import Message

from controlplane.controllers import ownership
from controlplane.controllers import rollingupdate as ru
from controlplane.controllers.deploymentstatus import (FOUND_NEW_RS, NEW_RS_CREATED, PAUSED, RESUMED, TIMED_OUT,
                                                       calculate_status, has_deadline, is_complete, recheck_after,
                                                       rollout_status, set_condition, strategy_of)
from controlplane.controllers.ownership import controller_ref
from controlplane.controllers.replicas import TERMINAL_PHASES
from controlplane.events import EventRecorder
from proto.skiff.v1 import apps_pb2
from skiff.api import labelselector, meta, rollout
from skiff.client import AlreadyExists, ApiClient, Conflict, NotFound
from skiff.controller import Controller, EventHandler, Key, SharedInformerFactory, key_of
from skiff.controller.lister import OWNER_INDEX

log = logging.getLogger(__name__)

# Deployment annotations a ReplicaSet does not copy.
_NOT_COPIED = (rollout.REVISION, rollout.DESIRED_REPLICAS, rollout.MAX_REPLICAS, rollout.LAST_APPLIED,
               "deployment.kubernetes.io/revision-history")


def _annotation_int(rs: apps_pb2.ReplicaSet, name: str) -> int | None:
    try:
        return int(rs.metadata.annotations[name])
    except (KeyError, ValueError):
        return None


def state_of(rs: apps_pb2.ReplicaSet) -> ru.ReplicaSetState:
    return ru.ReplicaSetState(rs.metadata.name, rs.spec.replicas, rs.status.available_replicas,
                              created=meta.seconds(rs.metadata.creation_timestamp),
                              desired_annotation=_annotation_int(rs, rollout.DESIRED_REPLICAS),
                              max_annotation=_annotation_int(rs, rollout.MAX_REPLICAS))


# ---------------------------------------------------------------- controller

class DeploymentController(Controller):
    name = "deployment"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory,
                 recorder: EventRecorder | None = None, clock: Callable[[], float] = time.time,
                 workers: int = 2) -> None:
        super().__init__(recorder=recorder, metrics=factory.metrics, workers=workers)
        self.client = client
        self.clock = clock
        self.deployments = self.watch(factory.informer("Deployment"))
        self.sets = self.uses(factory.informer("ReplicaSet"))
        self.sets.add_event_handler(EventHandler(on_add=self._rs_changed,
                                                 on_update=lambda k, old, new: (self._rs_changed(k, old),
                                                                                self._rs_changed(k, new)),
                                                 on_delete=self._rs_changed))
        self.pods = self.uses(factory.informer("Pod"))
        self.pods.add_event_handler(EventHandler(on_update=self._pod_updated, on_delete=self._pod_deleted))

    # ------------------------------------------------------------ events

    def _rs_changed(self, key: Key, rs: Message) -> None:
        ref = controller_ref(rs)
        if ref is not None:
            if ref.kind == "Deployment":
                self.enqueue((rs.metadata.namespace, ref.name))
            return
        for d in self.deployments.lister.list(rs.metadata.namespace):  # an orphan: who may adopt it
            if not labelselector.is_empty(d.spec.selector) and \
                    labelselector.matches(d.spec.selector, rs.metadata.labels):
                self.enqueue(key_of(d))

    def _pod_gone(self, pod: Message) -> None:
        """Recreate waits for the old pods to be gone."""
        ref = controller_ref(pod)
        if ref is None or ref.kind != "ReplicaSet":
            return
        rs = self.sets.get((pod.metadata.namespace, ref.name))
        owner = controller_ref(rs) if rs is not None else None
        if owner is not None and owner.kind == "Deployment":
            d = self.deployments.get((pod.metadata.namespace, owner.name))
            if d is not None and d.spec.strategy.type == "Recreate":
                self.enqueue(key_of(d))

    def _pod_updated(self, key: Key, old: Message, new: Message) -> None:
        if new.status.phase in TERMINAL_PHASES and old.status.phase not in TERMINAL_PHASES:
            self._pod_gone(new)

    def _pod_deleted(self, key: Key, pod: Message) -> None:
        self._pod_gone(pod)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: Key) -> float | None:
        cached = self.deployments.get(key)
        if cached is None:
            return None
        d = meta.copy(cached)
        if labelselector.is_empty(d.spec.selector):
            await self._event(d, "Warning", "SelectingAll",
                              "This deployment is selecting all pods. A non-empty selector is required.")
            return None
        selector = labelselector.to_selector(d.spec.selector)
        rs_list = await ownership.claim(self.client, d, self.sets.lister.list(d.metadata.namespace),
                                        selector.matches)
        if d.metadata.HasField("deletion_timestamp"):
            new, old = await self._get_all(d, rs_list, create=False)
            await self._write_status(d, calculate_status(d, [*old, *([new] if new else [])], new, self.clock()))
            return None
        d = await self._check_paused(d)
        if d.spec.paused or ru.is_scaling_event(strategy_of(d), [state_of(rs) for rs in rs_list
                                                                  if rs.spec.replicas > 0]):
            return await self._sync(d, rs_list)
        if d.spec.strategy.type == "Recreate":
            return await self._rollout_recreate(d, rs_list)
        return await self._rollout_rolling(d, rs_list)

    # ------------------------------------------------------------ the new ReplicaSet and revisions

    async def _get_all(self, d: apps_pb2.Deployment, rs_list: list[apps_pb2.ReplicaSet], *, create: bool
                       ) -> tuple[apps_pb2.ReplicaSet | None, list[apps_pb2.ReplicaSet]]:
        matching = sorted((rs for rs in rs_list if rollout.equal_ignore_hash(rs.spec.template, d.spec.template)),
                          key=lambda rs: (meta.seconds(rs.metadata.creation_timestamp), rs.metadata.name))
        existing = matching[0] if matching else None
        old = [rs for rs in rs_list if existing is None or rs.metadata.uid != existing.metadata.uid]
        new = await self._get_new(d, old, existing, create=create)
        return new, old

    def _rs_annotations(self, d: apps_pb2.Deployment, rs: apps_pb2.ReplicaSet, revision: int, *,
                        sizes: bool) -> bool:
        """Kubernetes' SetNewReplicaSetAnnotations: the Deployment's own
        annotations, the revision (only ever raised), and on a new ReplicaSet
        the sizes it is made for. Returns whether anything changed."""
        before = dict(rs.metadata.annotations)
        for k, v in d.metadata.annotations.items():
            if k not in _NOT_COPIED:
                rs.metadata.annotations[k] = v
        if rollout.revision_of(rs) < revision:
            rs.metadata.annotations[rollout.REVISION] = str(revision)
        if sizes:
            self._size_annotations(d, rs)
        return dict(rs.metadata.annotations) != before

    @staticmethod
    def _size_annotations(d: apps_pb2.Deployment, rs: apps_pb2.ReplicaSet) -> None:
        """Kubernetes' SetReplicasAnnotations: the sizes a ReplicaSet is scaled for."""
        rs.metadata.annotations[rollout.DESIRED_REPLICAS] = str(d.spec.replicas)
        rs.metadata.annotations[rollout.MAX_REPLICAS] = str(d.spec.replicas + ru.max_surge(strategy_of(d)))

    async def _get_new(self, d: apps_pb2.Deployment, old: list[apps_pb2.ReplicaSet],
                       existing: apps_pb2.ReplicaSet | None, *, create: bool) -> apps_pb2.ReplicaSet | None:
        revision = max((rollout.revision_of(rs) for rs in old), default=0) + 1
        now = self.clock()
        if existing is not None:
            rs = meta.copy(existing)
            changed = self._rs_annotations(d, rs, revision, sizes=False)
            if rs.spec.min_ready_seconds != d.spec.min_ready_seconds:
                rs.spec.min_ready_seconds = d.spec.min_ready_seconds
                changed = True
            if changed:
                rs = await self.client.update(rs)
            needs_write = d.metadata.annotations.get(rollout.REVISION) != rs.metadata.annotations.get(rollout.REVISION)
            d.metadata.annotations[rollout.REVISION] = rs.metadata.annotations.get(rollout.REVISION, str(revision))
            if has_deadline(d) and meta.get_condition(d.status.conditions, "Progressing") is None:
                set_condition(d.status.conditions, type_="Progressing", status="True", reason=FOUND_NEW_RS,
                              message=f'Found new replica set "{rs.metadata.name}"', now=now)
                needs_write = True
            if needs_write:
                await self._write_deployment_status(d)
            return rs
        if not create:
            return None
        collisions = d.status.collision_count if d.status.HasField("collision_count") else 0
        template_hash = rollout.pod_template_hash(d.spec.template, collisions)
        rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
        rs.metadata.name = f"{d.metadata.name}-{template_hash}"
        rs.metadata.namespace = d.metadata.namespace
        rs.spec.template.CopyFrom(d.spec.template)
        rs.spec.template.metadata.labels[rollout.POD_TEMPLATE_HASH] = template_hash
        rs.metadata.labels.update(rs.spec.template.metadata.labels)
        rs.metadata.owner_references.append(ownership.owner_reference(d))
        rs.spec.selector.CopyFrom(d.spec.selector)
        rs.spec.selector.match_labels[rollout.POD_TEMPLATE_HASH] = template_hash
        rs.spec.min_ready_seconds = d.spec.min_ready_seconds
        states = [state_of(o) for o in old]
        rs.spec.replicas = ru.new_replica_set_replicas(strategy_of(d), states, 0)
        self._rs_annotations(d, rs, revision, sizes=True)
        try:
            rs = await self.client.create(rs)
        except AlreadyExists:
            found = await self.client.get("ReplicaSet", rs.metadata.name, rs.metadata.namespace)
            ref = controller_ref(found)
            if ref is not None and ref.uid == d.metadata.uid and \
                    rollout.equal_ignore_hash(found.spec.template, d.spec.template):
                return found  # ours, from a reconcile whose result the cache has not shown yet
            # A hash collision: another template under this name. Try the next name.
            d.status.collision_count = collisions + 1
            await self._write_deployment_status(d)
            raise
        if rs.spec.replicas > 0:
            await self._event(d, "Normal", "ScalingReplicaSet",
                              f"Scaled up replica set {rs.metadata.name} from 0 to {rs.spec.replicas}")
        d.metadata.annotations[rollout.REVISION] = str(revision)
        if has_deadline(d):
            set_condition(d.status.conditions, type_="Progressing", status="True", reason=NEW_RS_CREATED,
                          message=f'Created new replica set "{rs.metadata.name}"', now=now)
        await self._write_deployment_status(d)
        return rs

    # ------------------------------------------------------------ scaling

    async def _scale(self, d: apps_pb2.Deployment, rs: apps_pb2.ReplicaSet, replicas: int) -> apps_pb2.ReplicaSet:
        updated = meta.copy(rs)
        updated.spec.replicas = replicas
        # Only the sizes, as Kubernetes' scaleReplicaSet: the Deployment's own annotations
        # (a change-cause) go to its new ReplicaSet alone, never to an old one scaled down.
        self._size_annotations(d, updated)
        if updated == rs:
            return rs
        try:
            result = await self.client.update(updated)
        except Conflict:
            # Mostly the ReplicaSet controller's status write: if the spec is as
            # we read it, the decision stands; otherwise look again later.
            fresh = await self.client.get("ReplicaSet", rs.metadata.name, rs.metadata.namespace)
            if fresh.metadata.uid != rs.metadata.uid or fresh.spec != rs.spec:
                raise
            fresh.spec.replicas = replicas
            fresh.metadata.annotations.clear()
            fresh.metadata.annotations.update(updated.metadata.annotations)
            result = await self.client.update(fresh)
        if replicas != rs.spec.replicas:
            direction = "up" if replicas > rs.spec.replicas else "down"
            await self._event(d, "Normal", "ScalingReplicaSet", f"Scaled {direction} replica set "
                                                                 f"{rs.metadata.name} from {rs.spec.replicas} to {replicas}")
        return result

    async def _apply(self, d: apps_pb2.Deployment, sets: list[apps_pb2.ReplicaSet],
                     changes: dict[str, int]) -> list[apps_pb2.ReplicaSet]:
        out = []
        for rs in sets:
            if rs.metadata.name in changes:
                rs = await self._scale(d, rs, changes[rs.metadata.name])
            out.append(rs)
        return out

    async def _sync(self, d: apps_pb2.Deployment, rs_list: list[apps_pb2.ReplicaSet]) -> float | None:
        """Paused or resized: scale without rolling (Kubernetes' sync)."""
        new, old = await self._get_all(d, rs_list, create=False)
        s = strategy_of(d)
        saturated = (new is not None and new.spec.replicas == d.spec.replicas
                     and _annotation_int(new, rollout.DESIRED_REPLICAS) == d.spec.replicas
                     and new.status.available_replicas == d.spec.replicas)
        changes = ru.scale(s, state_of(new) if new is not None else None, [state_of(rs) for rs in old],
                           new_saturated=saturated, status_replicas=d.status.replicas)
        everything = await self._apply(d, [*([new] if new is not None else []), *old], changes)
        if new is not None:
            new, old = everything[0], everything[1:]
        else:
            old = everything
        if d.spec.paused:
            await self._cleanup(d, old)
        await self._write_status(d, calculate_status(d, everything, new, self.clock()))
        return None

    async def _rollout_rolling(self, d: apps_pb2.Deployment, rs_list: list[apps_pb2.ReplicaSet]) -> float | None:
        new, old = await self._get_all(d, rs_list, create=True)
        assert new is not None
        s = strategy_of(d)
        states = [state_of(rs) for rs in [*old, new]]
        target = ru.reconcile_new(s, states, state_of(new))
        if target is not None:
            new = await self._scale(d, new, target)
            return await self._sync_rollout(d, [*old, new], new)
        active_old = [rs for rs in old if rs.spec.replicas > 0]
        changes = ru.reconcile_old(s, states, [state_of(rs) for rs in active_old], state_of(new))
        if changes:
            old = await self._apply(d, old, changes)
            return await self._sync_rollout(d, [*old, new], new)
        if is_complete(d, d.status):
            await self._cleanup(d, old)
        return await self._sync_rollout(d, [*old, new], new)

    async def _rollout_recreate(self, d: apps_pb2.Deployment, rs_list: list[apps_pb2.ReplicaSet]) -> float | None:
        new, old = await self._get_all(d, rs_list, create=False)
        changes = ru.recreate_old([state_of(rs) for rs in old])
        if changes:
            old = await self._apply(d, old, changes)
            return await self._sync_rollout(d, [*old, *([new] if new else [])], new)
        if self._old_pods_running(old):
            return await self._sync_rollout(d, [*old, *([new] if new else [])], new)
        if new is None:
            new, old = await self._get_all(d, rs_list, create=True)
        assert new is not None
        if new.spec.replicas != d.spec.replicas:
            new = await self._scale(d, new, d.spec.replicas)
        if is_complete(d, d.status):
            await self._cleanup(d, old)
        return await self._sync_rollout(d, [*old, new], new)

    def _old_pods_running(self, old: list[apps_pb2.ReplicaSet]) -> bool:
        """Any pod of an old ReplicaSet not finished yet (being deleted counts as running)."""
        return any(p.status.phase not in TERMINAL_PHASES
                   for rs in old for p in self.pods.lister.by_index(OWNER_INDEX, rs.metadata.uid))

    async def _cleanup(self, d: apps_pb2.Deployment, old: list[apps_pb2.ReplicaSet]) -> None:
        """Delete the oldest revisions beyond revisionHistoryLimit (only empty ones)."""
        if not d.spec.HasField("revision_history_limit"):
            return
        alive = [rs for rs in old if not rs.metadata.HasField("deletion_timestamp")]
        excess = len(alive) - d.spec.revision_history_limit
        if excess <= 0:
            return
        alive.sort(key=lambda rs: (rollout.revision_of(rs), meta.seconds(rs.metadata.creation_timestamp)))
        for rs in alive[:excess]:
            if rs.status.replicas or rs.spec.replicas or rs.metadata.generation > rs.status.observed_generation:
                continue
            try:
                await self.client.delete("ReplicaSet", rs.metadata.name, rs.metadata.namespace,
                                         precondition_uid=rs.metadata.uid)
                log.info("deployment %s: deleted old replica set %s (revision %d)", meta.namespaced_name(d),
                         rs.metadata.name, rollout.revision_of(rs))
            except NotFound:
                pass

    # ------------------------------------------------------------ status

    async def _check_paused(self, d: apps_pb2.Deployment) -> apps_pb2.Deployment:
        if not has_deadline(d):
            return d
        cond = meta.get_condition(d.status.conditions, "Progressing")
        if cond is not None and cond.reason == TIMED_OUT:
            return d
        paused_noted = cond is not None and cond.reason == PAUSED
        now = self.clock()
        if d.spec.paused and not paused_noted:
            set_condition(d.status.conditions, type_="Progressing", status="Unknown", reason=PAUSED,
                          message="Deployment is paused", now=now)
        elif not d.spec.paused and paused_noted:
            set_condition(d.status.conditions, type_="Progressing", status="Unknown", reason=RESUMED,
                          message="Deployment is resumed", now=now)
        else:
            return d
        await self._write_deployment_status(d)
        return d

    async def _sync_rollout(self, d: apps_pb2.Deployment, all_rs: list[apps_pb2.ReplicaSet],
                            new: apps_pb2.ReplicaSet | None) -> float | None:
        now = self.clock()
        status = rollout_status(d, all_rs, new, now)
        await self._write_status(d, status)
        return recheck_after(d, status, now)

    async def _write_status(self, d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus) -> None:
        if status == d.status:
            return
        d.status.CopyFrom(status)
        await self._write_deployment_status(d)

    async def _write_deployment_status(self, d: apps_pb2.Deployment) -> None:
        """Status and the revision annotation in one write (the status
        endpoint takes both, as Kubernetes'); `d` follows the stored version."""
        try:
            stored = await self.client.update_status(d)
        except NotFound:
            return
        except Conflict:
            raise  # the Deployment changed meanwhile: reconcile again from the cache
        d.metadata.resource_version = stored.metadata.resource_version

    async def _event(self, obj: Message, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            await self.recorder.record(obj, type_=type_, reason=reason, message=message)
