"""Pod workers: one reconcile loop per pod, desired (the API) against actual (the runtime).

    informer event (ns, name) ──► enqueue(uid) ──► WorkQueue ──► reconcile(uid), a task per pod
    container exit (runtime.wait) ──┘     ▲                             │
    resync timer, back-off timer ─────────┴────── requeue after N s ◄───┘

PodWorkers is a controller of the kit (skiff.controller) whose keys are pod
uids, with a worker per key: the queue guarantees one reconcile per pod at a
time, pods never wait for each other, a failed reconcile is retried with the
queue's per-uid back-off (0.5 s doubling to 60 s) and a returned delay
requeues the pod after it.

`reconcile(uid)` is idempotent and trusts no event: it re-reads the pod from
the informer's cache and each container from the runtime, then does the one
next thing — create the sandbox and network, start or restart a container
(with kubelet's back-off), write the status when it changed, or tear the pod
down. The pod's state in this process (`PodRecord`) is only a memo of what the
runtime holds and can be rebuilt from it: `recover()` does so at start, so
containers outlive the agent (adopted, restartCount from the container id,
exits meanwhile reported) and whatever a dead pod left is removed.

Pod lifecycle on this node:

    new ─► Pending (ContainerCreating) ─► sandbox + network ─► each container's image, by
           imagePullPolicy (agent.imagepuller: pulled off the loop; ErrImagePull, then
           ImagePullBackOff while it fails) ─► init containers, one at a
           time, each to exit 0 ─► app containers started ─► Running
    Running ─► exit ─► restart per restartPolicy (CrashLoopBackOff while backing off)
            └► container spec changed (pod updated) ─► stop ─► start the new spec
            └► all done (Never / OnFailure+0) ─► Succeeded|Failed ─► release (containers,
                                                  network, sandbox; logs kept)
    deletionTimestamp or gone from the API ─► stop (grace) ─► remove ─► detach ─► remove
                                                  sandbox ─► delete the object (grace 0)
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

from agent.backoff import RestartBackoff
from agent.clock import Clock, SystemClock
from agent import configvolumes, lifecycle, pullsecrets
from agent.configobjects import ConfigObjects, references
from agent.containers import (ContainerConfigError, PodPaths, build_container_config, restart_of,
                              sandbox_config)
from agent.envvars import EnvContext, container_env, node_allocatable
from agent.events import EventRecorder
from agent.imagepuller import ImagePuller, Registry
from agent.images.types import Image
from agent.metrics import AgentMetrics
from agent.podnetwork import attach_pod, call_network
from agent.prober import ProbeManager
from agent.records import DEFAULT_GRACE_SECONDS, ContainerRecord, PodRecord
from agent.runtime.interface import ContainerStatus, Mount, Runtime, StartError, State
from agent.status import TERMINAL_PHASES, oom_score_adj
from agent.statuswriter import StatusWriter
from agent.tokens import TokenManager
from agent.volumes import container_mounts, prepare_volumes, release_volumes
from proto.skiff.v1 import types_pb2
from skiff.client import Conflict, NotFound
from skiff.controller import Controller, SharedInformerFactory
from skiff.retry import Backoff

log = logging.getLogger(__name__)

Key = tuple[str, str]
FORCED_GRACE_SECONDS = 2  # kubelet's minimumGracePeriodInSeconds
START_SLOTS = 16
"""Pods in their first setup at once (sandbox, network, first containers; decision 47). The
zygote starts one container at a time, so more pods in setup only wait in front of it, each
holding its configs and requests: 500 pods at once cost the agent ~10 MiB that the allocators'
fragmentation kept after the burst, for no speed. A postStart hook gives its slot back while
it runs; an image pull holds none (it runs in the background and wakes the pod when done)."""
_START_SLOT: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("start_slot", default=None)
RETRY_SECONDS = 10.0  # a pod that cannot progress yet (image missing, port taken) is retried


class PodSource(Protocol):
    """The informer's cache of the pods bound to this node."""
    def get(self, key: Key) -> types_pb2.Pod | None: ...
    def list(self) -> list[types_pb2.Pod]: ...


class ImageResolver(Protocol):
    def resolve(self, ref: str) -> Image | None: ...


class PodWorkers(Controller):
    name = "podworkers"
    workers = None   # a task per pod: a slow stop never holds up another pod

    def __init__(self, *, node_name: str, node_ip: str, pods: PodSource, client: Any, runtime: Runtime,
                 images: ImageResolver, pods_dir: Path, pids_limit: int, network: Any = None,
                 clock: Clock | None = None, metrics: AgentMetrics | None = None,
                 backoff: RestartBackoff | None = None, events: EventRecorder | None = None,
                 registry: Registry | None = None, default_pull_policy: str = "IfNotPresent",
                 pull_backoff: RestartBackoff | None = None, prober: ProbeManager | None = None,
                 informers: SharedInformerFactory | None = None,
                 resolv_conf: Callable[[types_pb2.Pod], str] | None = None,
                 service_env: Callable[[types_pb2.Pod], dict[str, str]] | None = None,
                 memory_volumes: bool = True, start_slots: int = START_SLOTS) -> None:
        self.node_name, self.node_ip = node_name, node_ip
        self._start_slots = asyncio.Semaphore(start_slots)
        # False (hollow nodes, as kubemark's fake mounter): Secret, projected and Memory emptyDir
        # volumes are plain directories, not a tmpfs mount each.
        self.memory_volumes = memory_volumes
        # The pod's /etc/resolv.conf and its Services' variables (agent.dns, agent.envvars);
        # None: the runtime's default resolv.conf and no Service variables.
        self.resolv_conf, self.service_env = resolv_conf, service_env
        self.pods, self.client, self.runtime, self.images = pods, client, runtime, images
        self.pods_dir, self.pids_limit, self.network = pods_dir, pids_limit, network
        self.clock = clock or SystemClock()
        self.metrics = metrics or AgentMetrics(node_name=node_name)
        super().__init__(backoff=Backoff(initial=0.5, maximum=60.0, jitter=False),
                         metrics=self.metrics.controller)
        self.backoff = backoff or RestartBackoff()
        self.events = events
        self.records: dict[str, PodRecord] = {}
        # Pulls run in the puller's threads; it wakes the pod (enqueue) when one ends.
        self.puller = ImagePuller(images=images, registry=registry, clock=self.clock,
                                  default_policy=default_pull_policy, backoff=pull_backoff,
                                  on_ready=self.enqueue, events=self._event)
        self._key_by_uid: dict[str, Key] = {}
        # The ConfigMaps and Secrets the pods name, each watched alone; a change wakes the pods naming it.
        self.config = ConfigObjects(informers, on_change=self.enqueue) if informers is not None else None
        # Projected ServiceAccount tokens, asked of the API and refreshed before they expire (agent.tokens).
        self.tokens = TokenManager(client=client, on_due=self.enqueue)
        self._allocatable = None
        # Probes run as tasks on this loop; a changed result wakes the pod's worker.
        self.prober = prober or ProbeManager(runtime=runtime, on_change=self.enqueue, events=self._event)
        # uid -> (resourceVersion, status, the stored pod) of our last status write
        self.status = StatusWriter(client=client, node_name=node_name, node_ip=node_ip, clock=self.clock,
                                   metrics=self.metrics, probes=self.prober)
        self._terminated: set[str] = set()
        self._task: asyncio.Task | None = None
        self.pending: set[str] = set()  # enqueued while not running (tests drive reconcile by hand)

    # ------------------------------------------------------------ queue

    def enqueue(self, uid: str) -> None:
        if self._task is None:
            self.pending.add(uid)
            return
        super().enqueue(uid)

    def on_pod_event(self, key: Key) -> None:
        """Informer handler: wake the worker of every pod uid this key means now or meant before."""
        pod = self.pods.get(key)
        if pod is not None:
            self._key_by_uid[pod.metadata.uid] = key
            self.enqueue(pod.metadata.uid)
        for uid, k in list(self._key_by_uid.items()):
            if k == key and (pod is None or uid != pod.metadata.uid):
                self.enqueue(uid)

    def start(self) -> None:
        """Process the queue in the background (a task per pod)."""
        self._task = asyncio.create_task(self.run(), name="pod-workers")
        for uid in list(self.pending) + list(self.records) + [p.metadata.uid for p in self.pods.list()]:
            self.enqueue(uid)
        self.pending.clear()

    async def shutdown(self) -> None:
        """Stop working WITHOUT touching containers: they outlive the agent."""
        self.queue.shutdown()
        tasks = [t for r in self.records.values() for t in r.waiters.values()]
        if self._task is not None:
            tasks.append(self._task)
        self._task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.prober.close()
        await self.puller.close()

    def describe_key(self, uid: str) -> str:
        return self._describe(uid)

    def _describe(self, uid: str) -> str:
        rec = self.records.get(uid)
        return f"{rec.namespace}/{rec.name} ({uid})" if rec else uid

    # ------------------------------------------------------------ lookups

    def _desired(self, uid: str) -> types_pb2.Pod | None:
        key = self._key_by_uid.get(uid)
        pod = self.pods.get(key) if key is not None else None
        if pod is not None and pod.metadata.uid == uid:
            return pod
        for pod in self.pods.list():
            if pod.metadata.uid == uid:
                self._key_by_uid[uid] = (pod.metadata.namespace, pod.metadata.name)
                return pod
        return None

    def lookup(self, namespace: str, name: str) -> PodRecord | None:
        """The record of the pod called namespace/name on this node (for logs, exec, stats)."""
        pod = self.pods.get((namespace, name))
        if pod is not None and pod.metadata.uid in self.records:
            return self.records[pod.metadata.uid]
        for rec in self.records.values():
            if rec.namespace == namespace and rec.name == name:
                return rec
        return None

    def _event(self, pod: types_pb2.Pod | None, kind: str, reason: str, message: str) -> None:
        if self.events is not None and pod is not None:
            self.events.record(pod, type=kind, reason=reason, message=message)

    async def _rt(self, operation: str, call: Awaitable[Any]) -> Any:
        with self.metrics.time_runtime(operation):
            return await call

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, uid: str) -> float | None:
        """Converge one pod; returns seconds after which to look again (None: on events only).
        A pod's first setup waits for one of the START_SLOTS."""
        pod, rec = self._desired(uid), self.records.get(uid)
        if pod is None or pod.metadata.HasField("deletion_timestamp") or (rec is not None and rec.sandbox is not None):
            return await self._reconcile(uid)
        await self._start_slots.acquire()
        held = [True]   # False while given back (a postStart hook) or if taking it again was cancelled
        token = _START_SLOT.set(held)
        try:
            return await self._reconcile(uid)
        finally:
            _START_SLOT.reset(token)
            if held[0]:
                self._start_slots.release()

    @contextlib.asynccontextmanager
    async def _start_slot_given_back(self) -> AsyncIterator[None]:
        """Wait for something slow (a postStart hook) without holding a start slot."""
        held = _START_SLOT.get()
        if not held or not held[0]:
            yield
            return
        held[0] = False
        self._start_slots.release()
        try:
            yield
        finally:
            await self._start_slots.acquire()
            held[0] = True

    async def _reconcile(self, uid: str) -> float | None:
        pod = self._desired(uid)
        rec = self.records.get(uid)
        if pod is None or pod.metadata.HasField("deletion_timestamp"):
            if rec is not None or (pod is not None and uid not in self._terminated):
                await self._terminate(uid, pod, rec)
            if pod is None:
                self._terminated.discard(uid)  # the API has forgotten it: so may we
            return None
        if rec is None:
            rec = self.records[uid] = self._new_record(pod)
        if self.config is not None and not rec.released:
            self.config.track(pod)
        if rec.released or pod.status.phase in TERMINAL_PHASES:
            if pod.status.phase in TERMINAL_PHASES:
                self.status.note_phase(uid, pod.status.phase)
            await self._release(rec, pod)
            return None
        if rec.evicted is not None:
            await self._evict(pod, rec)
            return None
        if pod.spec.HasField("termination_grace_period_seconds"):
            rec.grace_seconds = pod.spec.termination_grace_period_seconds
        requeues: list[float] = []
        if rec.sandbox is None:
            if not pod.status.container_statuses:
                await self.status.write(pod, rec)  # Pending / ContainerCreating before any slow work
            try:
                config = sandbox_config(pod, pids_limit=self.pids_limit,
                                        resolv_conf=self.resolv_conf(pod) if self.resolv_conf else "")
                rec.sandbox = await self._rt("create_sandbox", self.runtime.create_sandbox(config))
                prepare_volumes(pod=pod, paths=rec.paths, tmpfs=self.memory_volumes)
            except Exception as exc:  # shown on the pod and retried, never a crash loop of the agent
                log.exception("pod %s: creating the sandbox failed", self._describe(uid))
                self._setup_failed(pod, rec, ("FailedCreatePodSandBox", f"creating the pod sandbox: {exc}"))
                await self.status.write(pod, rec)
                return RETRY_SECONDS
        if await self._ensure_network(pod, rec) and await self._sync_volumes(pod, rec):
            # Init containers one at a time, each to completion (a sidecar, restartPolicy Always: until
            # started, then kept running); then the app containers. Once initialized, only the
            # sidecars are kept (restarted) beside the app containers.
            init_policy = "Never" if pod.spec.restart_policy == "Never" else "OnFailure"
            for container in pod.spec.init_containers:
                sidecar = container.restart_policy == "Always"
                if rec.initialized and not sidecar:
                    continue
                after = await self._sync_container(pod, rec, container, records=rec.init_containers,
                                                   policy="Always" if sidecar else init_policy)
                if after is not None:
                    requeues.append(after)
                cur = rec.init_containers[container.name].current
                if rec.initialized:
                    continue
                if sidecar:
                    if cur is None or cur.state is State.EXITED or not self.prober.started(cur.id):
                        break
                elif cur is None or cur.state is not State.EXITED or cur.exit_code != 0:
                    break
            else:
                rec.initialized = True
                for container in pod.spec.containers:
                    after = await self._sync_container(pod, rec, container, records=rec.containers,
                                                       policy=pod.spec.restart_policy or "Always")
                    if after is not None:
                        requeues.append(after)
        else:
            requeues.append(RETRY_SECONDS)
        status = await self.status.write(pod, rec)
        if status is not None and status.phase in TERMINAL_PHASES:
            await self._release(rec, pod)
            return None
        return min(requeues) if requeues else None

    def _new_record(self, pod: types_pb2.Pod) -> PodRecord:
        m = pod.metadata
        self._key_by_uid[m.uid] = (m.namespace, m.name)
        return PodRecord(uid=m.uid, namespace=m.namespace, name=m.name,
                         paths=PodPaths.of(pods_dir=self.pods_dir, namespace=m.namespace, name=m.name, uid=m.uid))

    async def _ensure_network(self, pod: types_pb2.Pod, rec: PodRecord) -> bool:
        """Attach the pod's network once; False while it cannot be (the port is taken ...)."""
        if self.network is not None and not rec.pod_ip and not pod.spec.host_network:
            with self.metrics.time_runtime("network_attach"):
                ready, error = await attach_pod(network=self.network, pod=pod, rec=rec, node_ip=self.node_ip)
        else:
            ready, error = await attach_pod(network=self.network, pod=pod, rec=rec, node_ip=self.node_ip)
        self._setup_failed(pod, rec, ("HostPortInUse", error) if error else None)
        return ready

    async def _sync_volumes(self, pod: types_pb2.Pod, rec: PodRecord) -> bool:
        """Write the pod's configMap/secret/downwardAPI/projected files where they changed;
        False while one cannot be set up yet (its containers then wait in ContainerCreating)."""
        if not any(configvolumes.is_config_volume(v) for v in pod.spec.volumes):
            return True
        if self.config is not None and not await self.config.wait_synced(references(pod)):
            return False
        await self.tokens.prefetch(pod)
        try:
            written = configvolumes.sync(pod, rec.paths.root / "volumes", self._env_context(rec, pod))
        except (configvolumes.VolumeError, ContainerConfigError, OSError) as exc:
            message = str(exc)
            if rec.mount_error != message:
                self._event(pod, "Warning", "FailedMount", message)
            rec.mount_error = message
            rec.setup_error = ("FailedMount", message)
            return False
        if rec.mount_error:
            rec.mount_error, rec.setup_error = "", None
        if written:
            log.info("pod %s: volume(s) %s written", self._describe(rec.uid), ", ".join(written))
        return True

    def _setup_failed(self, pod: types_pb2.Pod, rec: PodRecord, error: tuple[str, str] | None) -> None:
        if error is not None and error != rec.setup_error:
            self._event(pod, "Warning", "FailedCreatePodSandBox", error[1])
        rec.setup_error = error

    async def _sync_container(self, pod: types_pb2.Pod, rec: PodRecord, spec: types_pb2.Container, *,
                              records: dict[str, ContainerRecord], policy: str) -> float | None:
        cr = records.setdefault(spec.name, ContainerRecord())
        cur = cr.current
        if cur is not None and cur.state is not State.EXITED:
            try:
                cur = cr.current = await self.runtime.status(cur.id)
            except Exception as exc:  # the runtime lost it: report it as kubelet does
                log.warning("pod %s: container %s: status failed: %s", self._describe(rec.uid), cur.id, exc)
                cur = cr.current = ContainerStatus(
                    id=cur.id, pod_id=cur.pod_id, name=cur.name, state=State.EXITED, started_at=cur.started_at,
                    finished_at=self.clock.now(), exit_code=137, reason="ContainerStatusUnknown",
                    message="The container could not be located when the pod was terminated")
        if cur is None:
            return await self._start(pod, rec, spec, cr, restart=cr.restart)
        if cur.state is not State.EXITED and cr.spec_hash and cr.spec_hash != _spec_hash(spec):
            # The pod was updated (a new image ...): kubelet restarts the container, without back-off.
            self._event(pod, "Normal", "Killing", f"Container {spec.name} definition changed, will be restarted")
            self.prober.forget(cur.id)
            await self._stop(pod, rec, spec, cur.id, rec.grace_seconds)
            cr.current = await self.runtime.status(cur.id)
            return await self._start(pod, rec, spec, cr, restart=cr.restart + 1)
        if cur.state is not State.EXITED:
            kill = self.prober.kill_requested(cur.id)
            if kill is None:
                cr.waiting = None
                self._watch(rec, cur.id)
                self._probe(pod, rec, spec, cur.id)
                return None
            # A liveness or startup probe failed: kill it; the restart below follows restartPolicy.
            kind, probe_grace = kill
            self._event(pod, "Normal", "Killing", f"Container {spec.name} failed {kind.lower()} probe, "
                                                  f"will be restarted")
            grace = probe_grace if probe_grace is not None else rec.grace_seconds
            await self._stop(pod, rec, spec, cur.id, grace)
            cur = cr.current = await self.runtime.status(cur.id)
        self.prober.forget(cur.id)
        if cur.state is State.EXITED and spec.termination_message_path and not cur.message:
            message = lifecycle.termination_message(_message_file(rec, spec.name, cr.restart))
            if message:
                cur = cr.current = dataclasses.replace(cur, message=message)
        if cur.exit_code and not cur.message and spec.termination_message_policy == "FallbackToLogsOnError":
            cur = cr.current = dataclasses.replace(
                cur, message=lifecycle.fallback_message(rec.paths.log_path(spec.name, cr.restart)))
        if policy == "Never" or (policy == "OnFailure" and cur.exit_code == 0):
            cr.waiting = None
            return None
        if self.puller.busy(pod_uid=rec.uid, container=spec):
            # This restart was let through already and waits for its image (Always pulls each time).
            return await self._start(pod, rec, spec, cr, restart=cr.restart + 1)
        key = (rec.uid, spec.name)
        finished = cur.finished_at or self.clock.now()
        left = self.backoff.remaining(key, finished_at=finished, now=self.clock.now())
        if left > 0:
            if cr.waiting is None or cr.waiting[0] != "CrashLoopBackOff":
                self._event(pod, "Warning", "BackOff", f"Back-off restarting failed container {spec.name} in pod "
                                                       f"{rec.name}_{rec.namespace}({rec.uid})")
            cr.waiting = ("CrashLoopBackOff", f"back-off {self.backoff.current(key):g}s restarting failed "
                                              f"container={spec.name} pod={rec.name}_{rec.namespace}({rec.uid})")
            return left
        self.backoff.next(key, finished_at=finished)
        return await self._start(pod, rec, spec, cr, restart=cr.restart + 1)

    async def _start(self, pod: types_pb2.Pod, rec: PodRecord, spec: types_pb2.Container, cr: ContainerRecord, *,
                     restart: int) -> float | None:
        credentials = None
        if pod.spec.image_pull_secrets:
            if self.config is not None:
                await self.config.wait_synced(references(pod))
            lookup = self.config.get if self.config is not None else (lambda kind, namespace, name: None)
            credentials, missing = pullsecrets.credentials_for(pod, spec.image, lookup)
            if missing:
                self._event(pod, "Warning", "FailedToRetrieveImagePullSecret",
                            f"Unable to retrieve some image pull secrets ({', '.join(missing)}); attempting to "
                            f"pull the image may not succeed.")
        pulled = await self.puller.ensure(pod=pod, container=spec, credentials=credentials)
        if pulled.image is None:
            cr.waiting = pulled.waiting
            return pulled.retry_after
        image = pulled.image
        if self.config is not None and not await self.config.wait_synced(references(pod)):
            cr.waiting = ("ContainerCreating", "waiting for the ConfigMaps and Secrets the pod names")
            return RETRY_SECONDS
        try:
            env = container_env(pod, spec, self._env_context(rec, pod))   # (also reads the node's allocatable)
            if env.invalid_keys:
                self._event(pod, "Warning", "InvalidEnvironmentVariableNames",
                            f"Keys [{', '.join(env.invalid_keys)}] from the EnvFrom of container {spec.name} were "
                            f"skipped since they are considered invalid environment variable names.")
            mounts = container_mounts(pod=pod, container=spec, paths=rec.paths)
            if spec.termination_message_path:   # a file of the node's at that path, read after the exit
                message_file = _message_file(rec, spec.name, restart)
                message_file.parent.mkdir(parents=True, exist_ok=True)
                message_file.write_bytes(b"")
                mounts += (Mount(target=spec.termination_message_path, source=str(message_file)),)
            config = build_container_config(pod=pod, container=spec, image=image, restart=restart,
                                            paths=rec.paths, pids_limit=self.pids_limit, mounts=mounts,
                                            pod_env=env.variables, oom_score_adj=oom_score_adj(
                                                pod, spec, memory_capacity=self._allocatable[1]))
        except ContainerConfigError as exc:
            cr.waiting = (exc.reason, exc.message)
            self._event(pod, "Warning", "Failed", f"Error: {exc.message}")
            return RETRY_SECONDS
        if config.log_path is not None:
            config.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.metrics.container_starts.labels(node=self.node_name).inc()
        try:
            status = await self._rt("start", self.runtime.start(config))
        except Exception as exc:  # StartError is the user's; anything else is reported the same way
            if not isinstance(exc, StartError):
                log.exception("pod %s: starting container %s failed", self._describe(rec.uid), spec.name)
            now = self.clock.now()
            status = ContainerStatus(id=config.id, pod_id=rec.uid, name=spec.name, state=State.EXITED,
                                     started_at=now, finished_at=now, exit_code=128, reason="StartError",
                                     message=str(exc), image=spec.image, image_id=image.id)
            self._event(pod, "Warning", "Failed", f"Error: {exc}")
        else:
            self._event(pod, "Normal", "Created", f"Created container {spec.name}")
            self._event(pod, "Normal", "Started", f"Started container {spec.name}")
            if spec.lifecycle.HasField("post_start"):
                status = await self._post_start(pod, rec, spec, status)
        if cr.current is not None and cr.current.id != status.id:
            if cr.previous is not None:  # keep one dead attempt (lastState); older ones go
                await self._rt("remove", self.runtime.remove(cr.previous.id))
            cr.previous = cr.current
        cr.current, cr.restart, cr.waiting, cr.spec_hash = status, restart, None, _spec_hash(spec)
        if status.state is not State.EXITED:
            self._watch(rec, status.id)
            self._probe(pod, rec, spec, status.id)
        return None

    def _hook(self, pod: types_pb2.Pod, rec: PodRecord, spec: types_pb2.Container,
              handler: types_pb2.LifecycleHandler, container_id: str, timeout: float) -> Awaitable[str | None]:
        return lifecycle.run_handler(handler, runtime=self.runtime, sockets_of=lambda: self.prober.sockets,
                                     container_id=container_id, container=spec, pod_ip=rec.pod_ip, timeout=timeout,
                                     netns=rec.sandbox.netns_path if rec.sandbox is not None else None)

    async def _post_start(self, pod: types_pb2.Pod, rec: PodRecord, spec: types_pb2.Container,
                          status: ContainerStatus) -> ContainerStatus:
        """Run postStart before the container counts as started; a failure kills it."""
        async with self._start_slot_given_back():
            error = await self._hook(pod, rec, spec, spec.lifecycle.post_start, status.id, rec.grace_seconds)
        if error is None:
            return status
        self._event(pod, "Warning", "FailedPostStartHook", f"PostStartHook failed: {error}")
        self._event(pod, "Normal", "Killing", f"FailedPostStartHook: stopping container {spec.name}")
        await self._rt("stop", self.runtime.stop(status.id, rec.grace_seconds))
        return await self.runtime.status(status.id)

    async def _stop(self, pod: types_pb2.Pod | None, rec: PodRecord | None, spec: types_pb2.Container | None,
                    container_id: str, grace: float) -> None:
        """preStop (if any) inside the grace period, then the stop signal with what is left of it."""
        if pod is not None and rec is not None and spec is not None and spec.lifecycle.HasField("pre_stop"):
            started = asyncio.get_running_loop().time()
            error = await self._hook(pod, rec, spec, spec.lifecycle.pre_stop, container_id, grace)
            if error is not None:
                self._event(pod, "Warning", "FailedPreStopHook", f"PreStopHook failed: {error}")
            # kubelet leaves at least 2 s for the stop signal after a hook
            grace = max(grace - (asyncio.get_running_loop().time() - started), FORCED_GRACE_SECONDS)
        await self._rt("stop", self.runtime.stop(container_id, grace))

    def _env_context(self, rec: PodRecord, pod: types_pb2.Pod) -> EnvContext:
        if self._allocatable is None:
            self._allocatable = node_allocatable()
        lookup = self.config.get if self.config is not None else (lambda kind, namespace, name: None)
        return EnvContext(lookup=lookup, pod_ip=rec.pod_ip, host_ip=self.node_ip, allocatable=self._allocatable,
                          service_env=self.service_env(pod) if self.service_env else {},
                          token=self.tokens.token, token_error=self.tokens.error)

    def _probe(self, pod: types_pb2.Pod, rec: PodRecord, spec: types_pb2.Container, container_id: str) -> None:
        """Run the container's probes (once per attempt)."""
        self.prober.ensure(pod, spec, container_id=container_id, pod_ip=rec.pod_ip,
                           netns=rec.sandbox.netns_path if rec.sandbox is not None else None)

    def _watch(self, rec: PodRecord, container_id: str) -> None:
        """Wake the pod's worker when this container exits."""
        task = rec.waiters.get(container_id)
        if task is not None and not task.done():
            return

        async def wait() -> None:
            try:
                await self.runtime.wait(container_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pod %s: wait for %s failed: %s", self._describe(rec.uid), container_id, exc)
            self.enqueue(rec.uid)

        rec.waiters[container_id] = asyncio.create_task(wait(), name=f"wait-{container_id}")

    # ------------------------------------------------------------ eviction

    def evict(self, uid: str, message: str) -> None:
        """Evict the pod (node pressure, agent.eviction): its worker stops it and marks it Failed/Evicted."""
        rec = self.records.get(uid)
        if rec is not None and rec.evicted is None and not rec.released:
            rec.evicted = message
            self.enqueue(uid)

    async def _evict(self, pod: types_pb2.Pod, rec: PodRecord) -> None:
        self._event(pod, "Warning", "Evicted", rec.evicted or "")
        for records in (rec.containers, rec.init_containers):
            for name, cr in records.items():
                if cr.current is not None and cr.current.state is not State.EXITED:
                    self._event(pod, "Normal", "Killing", f"Stopping container {name}")
                    self.prober.forget(cr.current.id)
                    await self._rt("stop", self.runtime.stop(cr.current.id, 0))   # a hard threshold: no grace
                    cr.current = await self.runtime.status(cr.current.id)
                cr.waiting = None
        await self.status.write(pod, rec)
        await self._release(rec, pod)

    # ------------------------------------------------------------ teardown

    async def _free(self, uid: str, rec: PodRecord | None, *, grace: float,
                    pod: types_pb2.Pod | None = None) -> None:
        """Stop and remove every container of the pod, detach it, remove its sandbox."""
        self.prober.forget_pod(uid)
        if self.config is not None:
            self.config.untrack(uid)
        ids = [c for c in await self._rt("list_containers", self.runtime.list_containers()) if c.pod_id == uid]
        for c in ids:
            if c.state is not State.EXITED:
                self._event(pod, "Normal", "Killing", f"Stopping container {c.name}")
        # Sidecars (init containers with restartPolicy Always) are stopped after the app containers.
        sidecars = {s.name for s in pod.spec.init_containers if s.restart_policy == "Always"} if pod else set()
        specs = {s.name: s for s in list(pod.spec.init_containers) + list(pod.spec.containers)} if pod else {}
        for stage in (False, True):
            await asyncio.gather(*(self._stop(pod, rec, specs.get(c.name), c.id, grace) for c in ids
                                   if c.state is not State.EXITED and (c.name in sidecars) == stage))
        for c in ids:
            await self._rt("remove", self.runtime.remove(c.id))
        if rec is not None:
            for task in rec.waiters.values():
                task.cancel()
            rec.waiters.clear()
        if self.network is not None:
            await self._rt("network_detach", call_network(self.network.detach, uid))
        if rec is not None:
            release_volumes(paths=rec.paths)
        await self._rt("remove_sandbox", self.runtime.remove_sandbox(uid))

    async def _release(self, rec: PodRecord, pod: types_pb2.Pod | None = None) -> None:
        """A pod that reached Succeeded/Failed: free what it holds; logs and status stay."""
        if rec.released:
            return
        await self._free(rec.uid, rec, grace=rec.grace_seconds, pod=pod)
        rec.released, rec.sandbox = True, None

    async def _terminate(self, uid: str, pod: types_pb2.Pod | None, rec: PodRecord | None) -> None:
        # A pod gone from the API was force-deleted: kubelet's minimum grace applies.
        grace = float(min(rec.grace_seconds, FORCED_GRACE_SECONDS) if rec else FORCED_GRACE_SECONDS)
        if pod is not None:
            grace = float(rec.grace_seconds if rec else DEFAULT_GRACE_SECONDS)
            if pod.metadata.deletion_grace_period_seconds > 0:
                grace = pod.metadata.deletion_grace_period_seconds
            elif pod.spec.HasField("termination_grace_period_seconds"):
                grace = pod.spec.termination_grace_period_seconds
        if rec is None and pod is not None:
            rec = self._new_record(pod)
        await self._free(uid, rec, grace=grace, pod=pod)
        if self.events is not None:
            self.events.forget(uid)
        if rec is not None:
            shutil.rmtree(rec.paths.root, ignore_errors=True)
        if pod is not None:
            try:
                await self.client.delete("Pod", pod.metadata.name, pod.metadata.namespace,
                                         grace_period_seconds=0, precondition_uid=uid)
            except (NotFound, Conflict):  # gone already, or a new pod of the same name
                pass
        self._terminated.add(uid)
        self.records.pop(uid, None)
        self.status.forget(uid)
        self._key_by_uid.pop(uid, None)
        self.backoff.forget(uid)
        self.puller.forget(uid)
        self.tokens.forget(uid)

    # ------------------------------------------------------------ recovery

    async def recover(self) -> None:
        """At start, with the pod cache synced: adopt the containers of pods still
        bound here (no restart), remove whatever else a previous run left."""
        desired = {p.metadata.uid: p for p in self.pods.list()}
        containers = await self._rt("list_containers", self.runtime.list_containers())
        sandboxes = {s.pod_id: s for s in await self._rt("list_sandboxes", self.runtime.list_sandboxes())}
        by_pod: dict[str, list[ContainerStatus]] = {}
        for c in containers:
            by_pod.setdefault(c.pod_id, []).append(c)
        for uid in (set(by_pod) | set(sandboxes)) & set(desired):
            pod = desired[uid]
            rec = self.records[uid] = self._new_record(pod)
            rec.adopted, rec.sandbox, rec.pod_ip = True, sandboxes.get(uid), pod.status.pod_ip
            by_name: dict[str, list[ContainerStatus]] = {}
            for c in by_pod.get(uid, []):
                by_name.setdefault(c.name, []).append(c)
            init_names = {c.name for c in pod.spec.init_containers}
            for name, attempts in by_name.items():
                attempts.sort(key=lambda c: restart_of(c.id))
                records = rec.init_containers if name in init_names else rec.containers
                cr = records[name] = ContainerRecord(restart=restart_of(attempts[-1].id),
                                                            current=attempts[-1])
                if len(attempts) > 1:
                    cr.previous = attempts[-2]
                if cr.current.state is not State.EXITED:
                    self._watch(rec, cr.current.id)
            rec.initialized = bool(rec.containers)   # app containers ran: initialization is over
            log.info("adopted pod %s/%s (%s): %d container(s)", rec.namespace, rec.name, uid, len(by_pod.get(uid, [])))
        keep = set(desired)
        await self._rt("cleanup_orphans", self.runtime.cleanup_orphans(keep))
        if self.network is not None:
            await call_network(self.network.cleanup_orphans, keep)
        if self.pods_dir.is_dir():
            for d in self.pods_dir.iterdir():
                if d.is_dir() and d.name.rsplit("_", 1)[-1] not in keep:
                    release_volumes(paths=PodPaths(root=d))
                    shutil.rmtree(d, ignore_errors=True)
        for uid in keep:
            self.enqueue(uid)


def _message_file(rec: PodRecord, container: str, restart: int) -> Path:
    return rec.paths.root / container / f"{restart}.termination-log"


def _spec_hash(spec: types_pb2.Container) -> str:
    return hashlib.sha256(spec.SerializeToString(deterministic=True)).hexdigest()

