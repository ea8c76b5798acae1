"""The HorizontalPodAutoscaler controller: every `sync_seconds` (Kubernetes'
--horizontal-pod-autoscaler-sync-period, 15 s) each HPA's target pods are
measured and the target's spec.replicas (its scale) is set to what the
metrics ask for, within the behavior's windows and policies.

    reconcile(hpa) -> target (Deployment/ReplicaSet) -> its pods -> their usage
      -> replicas per metric (replicacalc.replicas_for_resource), the largest
      -> stabilize (the recommendations of the windows) -> limit_rate (policies,
         min/max) -> write spec.replicas, record SuccessfulRescale -> status

The numbers come from the agents' stats through the control plane's Stats
call, as `skiff top`'s do (StatsPodMetrics: CPU is the rate between two
samples a second apart; memory the working set). Tests inject a
PodMetricsSource and a clock. The recommendation and scale-event histories
live in this process, as they do in kube-controller-manager.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Protocol

from google.protobuf.message import Message

from controlplane.controllers import replicacalc
from controlplane.controllers.replicacalc import MissingRequest, PodSample, Rules
from controlplane.events import EventRecorder
from proto.skiff.v1 import autoscaling_pb2
from skiff.api import labelselector, meta
from skiff.api.quantity import cpu_millis, memory_bytes
from skiff.client import ApiClient, ApiError, Conflict, NotFound
from skiff.controller import Controller, EventHandler, Key, SharedInformerFactory

log = logging.getLogger(__name__)

Usage = dict[tuple[str, str], tuple[int, int]]   # (namespace, pod) -> (CPU millicores, memory bytes)


class PodMetricsSource(Protocol):
    async def usage(self, pods: list[Message]) -> Usage:
        """What the pods use now; a pod not measured is left out."""


class StatsPodMetrics:
    """The metrics API over the agents' stats (the path `skiff top` takes)."""

    def __init__(self, *, client: ApiClient, window: float = 1.0) -> None:
        self.client = client
        self.window = window

    async def usage(self, pods: list[Message]) -> Usage:
        nodes = sorted({p.spec.node_name for p in pods if p.spec.node_name})

        async def one(name: str) -> Message | None:
            try:
                return await self.client.stats(name, timeout=10)
            except ApiError:
                return None

        async def sample() -> tuple[list[Message | None], float]:
            started = time.monotonic()
            return list(await asyncio.gather(*(one(n) for n in nodes))), started

        first, t0 = await sample()
        await asyncio.sleep(self.window)
        second, t1 = await sample()
        seconds = max(t1 - t0, 1e-3)
        out: dict[tuple[str, str], list[int]] = {}
        for a, b in zip(first, second):
            if a is None or b is None:
                continue
            before = {(c.namespace, c.pod, c.container): c.cpu_usage_seconds for c in a.containers}
            for c in b.containers:
                key = (c.namespace, c.pod, c.container)
                if key not in before:
                    continue
                cpu = max(0, round((c.cpu_usage_seconds - before[key]) / seconds * 1000))
                total = out.setdefault((c.namespace, c.pod), [0, 0])
                total[0] += cpu
                total[1] += c.memory_working_set_bytes
        return {k: (v[0], v[1]) for k, v in out.items()}


def _rules(rules: Message) -> Rules:
    return Rules(rules.stabilization_window_seconds, rules.select_policy or "Max",
                 tuple((p.type, p.value, p.period_seconds) for p in rules.policies))


def _request(pod: Message, resource: str) -> tuple[int | None, str]:
    """The pod's request for the resource (None and the container lacking one)."""
    total = 0
    for c in pod.spec.containers:
        raw = c.resources.requests.get(resource)
        if not raw:
            return None, c.name
        total += cpu_millis(raw) if resource == "cpu" else memory_bytes(raw)
    return total, ""


def _ready(pod: Message) -> bool:
    cond = meta.get_condition(pod.status.conditions, "Ready")
    return pod.status.phase == "Running" and cond is not None and cond.status == "True"


class HorizontalPodAutoscalerController(Controller):
    name = "horizontal-pod-autoscaler"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory, recorder: EventRecorder,
                 metrics: PodMetricsSource | None = None, sync_seconds: float = 15.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(metrics=factory.metrics)
        self.client = client
        self.recorder = recorder
        self.source = metrics if metrics is not None else StatsPodMetrics(client=client)
        self.sync_seconds = sync_seconds
        self.clock = clock
        # Its own status writes must not wake it (each sync would start the next at once):
        # only a new HPA, a spec change (generation) or a deletion does; the rest is the sync period.
        self.hpas = self.uses(factory.informer("HorizontalPodAutoscaler"))
        self.hpas.add_event_handler(EventHandler(
            on_add=lambda key, obj: self.enqueue(key),
            on_update=lambda key, old, new: self.enqueue(key)
            if old.metadata.generation != new.metadata.generation else None,
            on_delete=lambda key, obj: self.enqueue(key)))
        self.pods = self.uses(factory.informer("Pod"))
        self.targets = {kind: self.uses(factory.informer(kind)) for kind in ("Deployment", "ReplicaSet")}
        self._recommendations: dict[Key, list[tuple[float, int]]] = {}
        self._up_events: dict[Key, list[tuple[float, int]]] = {}
        self._down_events: dict[Key, list[tuple[float, int]]] = {}

    async def reconcile(self, key: Key) -> float | None:
        hpa = self.hpas.get(key)
        if hpa is None:
            for history in (self._recommendations, self._up_events, self._down_events):
                history.pop(key, None)
            return None
        hpa = meta.copy(hpa)
        spec, status = hpa.spec, hpa.status
        now = self.clock()
        stamp = meta.timestamp(now)
        ref = spec.scale_target_ref
        informer = self.targets.get(ref.kind)
        target = informer.get((hpa.metadata.namespace, ref.name)) if informer is not None else None
        if target is None:
            message = f'deployments/scale.apps "{ref.name}" not found' if ref.kind == "Deployment" else \
                f'{ref.kind.lower()}s/scale.apps "{ref.name}" not found'
            meta.set_condition(status.conditions, type_="AbleToScale", status="False", reason="FailedGetScale",
                               message=f"the HPA controller was unable to get the target's current scale: {message}",
                               now=stamp)
            await self.recorder.record(hpa, type_="Warning", reason="FailedGetScale", message=message)
            await self._write_status(hpa)
            return self.sync_seconds
        current = target.spec.replicas
        status.current_replicas = target.status.replicas
        if current == 0 and spec.min_replicas != 0:
            status.desired_replicas = 0
            meta.set_condition(status.conditions, type_="AbleToScale", status="True", reason="SucceededGetScale",
                               message="the HPA controller was able to get the target's current scale", now=stamp)
            meta.set_condition(status.conditions, type_="ScalingActive", status="False", reason="ScalingDisabled",
                               message="scaling is disabled since the replica count of the target is zero",
                               now=stamp)
            await self._write_status(hpa)
            return self.sync_seconds

        if not spec.min_replicas <= current <= spec.max_replicas:
            # Out of bounds: corrected before any metric is read, as Kubernetes does.
            bound = spec.max_replicas if current > spec.max_replicas else spec.min_replicas
            why = ("Current number of replicas above Spec.MaxReplicas" if current > spec.max_replicas
                   else "Current number of replicas below Spec.MinReplicas")
            return await self._rescale(key, hpa, current=current, replicas=bound, reason=why, stamp=stamp, now=now,
                                       limited=("TooManyReplicas" if bound == spec.max_replicas else
                                                "TooFewReplicas", "the desired replica count is "
                                                + ("more than the maximum" if bound == spec.max_replicas
                                                   else "less than the minimum") + " replica count"))

        pods = [p for p in self.pods.list() if p.metadata.namespace == hpa.metadata.namespace
                and labelselector.matches(target.spec.selector, p.metadata.labels)
                and not p.metadata.HasField("deletion_timestamp") and p.status.phase not in ("Failed", "Succeeded")]
        proposals, failure = await self._metric_proposals(hpa, pods, current)
        if failure is not None:
            reason, message = failure
            await self.recorder.record(hpa, type_="Warning", reason=reason, message=message)
            meta.set_condition(status.conditions, type_="AbleToScale", status="True", reason="SucceededGetScale",
                               message="the HPA controller was able to get the target's current scale", now=stamp)
            meta.set_condition(status.conditions, type_="ScalingActive", status="False", reason=reason,
                               message=f"the HPA was unable to compute the replica count: {message}", now=stamp)
            status.desired_replicas = current
            await self._write_status(hpa)
            return self.sync_seconds

        desired, desired_reason = max(proposals)
        if desired <= current:
            desired_reason = "All metrics below target"   # Kubernetes' words for a scale-down
        up, down = _rules(spec.behavior.scale_up), _rules(spec.behavior.scale_down)
        history = self._recommendations.setdefault(key, [])
        horizon = max(up.window_seconds, down.window_seconds)
        history[:] = [(at, r) for at, r in history if at > now - horizon]
        stabilized = replicacalc.stabilize(history, desired=desired, current=current, now=now, up=up, down=down)
        history.append((now, desired))
        up_events, down_events = self._up_events.setdefault(key, []), self._down_events.setdefault(key, [])
        longest = max([p[2] for p in up.policies + down.policies] or [0])
        up_events[:] = [e for e in up_events if e[0] > now - longest]
        down_events[:] = [e for e in down_events if e[0] > now - longest]
        replicas, limited, limited_message = replicacalc.limit_rate(
            stabilized, current=current, min_replicas=spec.min_replicas, max_replicas=spec.max_replicas,
            up_events=up_events, down_events=down_events, up=up, down=down, now=now)

        return await self._rescale(key, hpa, current=current, replicas=replicas, reason=desired_reason,
                                   stamp=stamp, now=now, limited=(limited, limited_message))

    async def _rescale(self, key: Key, hpa: Message, *, current: int, replicas: int, reason: str, stamp, now: float,
                       limited: tuple[str, str]) -> float:
        """Write the target's new size (if it changed), the events and the status."""
        spec, status, ref = hpa.spec, hpa.status, hpa.spec.scale_target_ref
        up_events, down_events = self._up_events.setdefault(key, []), self._down_events.setdefault(key, [])
        limited, limited_message = limited
        desired_reason = reason
        able = ("True", "ReadyForNewScale", "recommended size matches current size")
        if replicas != current:
            try:
                await self._scale(hpa.metadata.namespace, ref.kind, ref.name, replicas)
            except ApiError as exc:
                meta.set_condition(status.conditions, type_="AbleToScale", status="False",
                                   reason="FailedUpdateScale",
                                   message=f"the HPA controller was unable to update the target scale: {exc}",
                                   now=stamp)
                await self.recorder.record(hpa, type_="Warning", reason="FailedRescale",
                                           message=f"New size: {replicas}; reason: {desired_reason}; error: {exc}")
                await self._write_status(hpa)
                return 1.0 if isinstance(exc, Conflict) else self.sync_seconds
            (up_events if replicas > current else down_events).append((now, abs(replicas - current)))
            status.last_scale_time.CopyFrom(stamp)
            await self.recorder.record(hpa, type_="Normal", reason="SuccessfulRescale",
                                       message=f"New size: {replicas}; reason: {desired_reason}")
            able = ("True", "SucceededRescale", f"the HPA controller was able to update the target scale to {replicas}")
            log.info("%s/%s: %s/%s scaled from %d to %d (%s)", *key, ref.kind, ref.name, current, replicas,
                     desired_reason)
        status.desired_replicas = replicas
        meta.set_condition(status.conditions, type_="AbleToScale", status=able[0], reason=able[1],
                           message=able[2], now=stamp)
        if status.current_metrics:
            meta.set_condition(status.conditions, type_="ScalingActive", status="True", reason="ValidMetricFound",
                               message="the HPA was able to successfully calculate a replica count from "
                                       f"{spec.metrics[0].resource.name} resource"
                                       + (" utilization (percentage of request)"
                                          if spec.metrics[0].resource.target.type == "Utilization" else ""),
                               now=stamp)
        meta.set_condition(status.conditions, type_="ScalingLimited",
                           status="False" if limited == "DesiredWithinRange" else "True", reason=limited,
                           message=limited_message, now=stamp)
        await self._write_status(hpa)
        return self.sync_seconds

    async def _metric_proposals(self, hpa: Message, pods: list[Message],
                                current: int) -> tuple[list[tuple[int, str]], tuple[str, str] | None]:
        """(replicas, reason) per metric, and fills status.currentMetrics;
        or the failure (event reason, message) when no metric gave a count."""
        status = hpa.status
        del status.current_metrics[:]
        if not pods:
            return [], ("FailedGetResourceMetric", "failed to get "
                        f"{hpa.spec.metrics[0].resource.name} utilization: no pods match the target's selector")
        usage = await self.source.usage(pods)
        proposals, failure = [], None
        for metric in hpa.spec.metrics:
            resource, target = metric.resource.name, metric.resource.target
            index = 0 if resource == "cpu" else 1
            samples = []
            for pod in pods:
                request, lacking = _request(pod, resource)
                used = usage.get((pod.metadata.namespace, pod.metadata.name))
                samples.append(PodSample(pod.metadata.name, request, used[index] if used else None,
                                         ready=_ready(pod) if resource == "cpu" else True,
                                         missing_request_in=lacking))
            utilization = target.type == "Utilization"
            what = f"{resource} utilization" if utilization else f"{resource} usage"
            try:
                result = replicacalc.replicas_for_resource(
                    samples, current=current, resource=resource,
                    target_utilization=target.average_utilization if utilization else None,
                    target_average=None if utilization else (cpu_millis(target.average_value) if resource == "cpu"
                                                            else memory_bytes(target.average_value)))
            except (MissingRequest, LookupError) as exc:
                failure = failure or ("FailedGetResourceMetric", f"failed to get {what}: {exc}")
                continue
            value = autoscaling_pb2.MetricValueStatus(
                average_value=f"{result.average}m" if resource == "cpu" else str(result.average))
            if result.utilization is not None:
                value.average_utilization = result.utilization
            status.current_metrics.add(type="Resource",
                                       resource=autoscaling_pb2.ResourceMetricStatus(name=resource, current=value))
            proposals.append((result.replicas, f"{resource} resource"
                              + (" utilization (percentage of request)" if utilization else "") + " above target"))
        return proposals, (None if proposals else failure)

    async def _scale(self, namespace: str, kind: str, name: str, replicas: int) -> None:
        """The scale subresource's write: the target's spec.replicas, at its resourceVersion."""
        target = await self.client.get(kind, name, namespace)
        target.spec.replicas = replicas
        await self.client.update(target)

    async def _write_status(self, hpa: Message) -> None:
        hpa.status.observed_generation = hpa.metadata.generation
        if self.hpas.get((hpa.metadata.namespace, hpa.metadata.name)) == hpa:
            return  # nothing new to say
        try:
            await self.client.update_status(hpa)
        except (NotFound, Conflict):
            pass  # deleted, or changed meanwhile: the next sync writes it
