"""Pods get their images: imagePullPolicy, pulls off the event loop, back-off.

The pod workers ask `ImagePuller.ensure(pod=, container=)` before each container
start and get either the local `Image` or why the container waits:

    policy (the container's; else the node's default, see DEFAULT_POLICY_MODES)
      Never ─────────► present? image : ErrImageNeverPull
      IfNotPresent ──► present? image : pull
      Always ────────► pull (layers already in the store are not downloaded again)
    pull ─► back-off running for (pod, image)? ──► ImagePullBackOff (retry when it ends)
         └► join the pull of that reference already under way, or start one in a
            worker thread; the container waits as ContainerCreating; when the pull
            ends every pod that waited is woken (`on_ready`) and its next ensure()
            takes the result: the image, or ErrImagePull with the error (and the
            back-off for (pod, image) doubles: 10 s → 5 min, as kubelet's)

This mirrors kubelet's image manager (pkg/kubelet/images/image_manager.go):
the same reasons, messages and Events (Pulling, Pulled, Failed, BackOff) and
the back-off keyed on pod and image. Unlike kubelet a pull never blocks the
pod's reconcile: a pod deleted during a long pull is torn down at once.
Pulls of one reference are coalesced: several pods wanting it share one
download. The pull itself is `Registry.pull` (agent.images.registry against
the node's ImageStore in the agent; a fake in the tests).
"""
from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from agent.backoff import RestartBackoff
from agent.clock import Clock, SystemClock
from agent.images.errors import InvalidReference
from agent.images.reference import normalize
from agent.images.types import Image
from proto.skiff.v1 import types_pb2

log = logging.getLogger(__name__)

POLICIES = ("Always", "IfNotPresent", "Never")
# How a container that sets no imagePullPolicy is treated:
#   "kubernetes"   - Kubernetes' defaulting: Always for :latest or no tag, else IfNotPresent;
#   "IfNotPresent" - an image the node already has is used as is, any other is pulled: a
#                    node that is offline, or runs images built and bootstrapped locally
#                    (`busybox`, `my-web-server:latest`), never reaches out for them.
DEFAULT_POLICY_MODES = ("kubernetes", "IfNotPresent")
PULL_BACKOFF_INITIAL, PULL_BACKOFF_MAX = 10.0, 300.0   # kubelet's backOffPeriod, MaxContainerBackOff

Key = tuple[str, str]             # (pod uid, image): the back-off's key, as kubelet's
WaitKey = tuple[str, str, str]    # (pod uid, container name, image)
EventSink = Callable[[types_pb2.Pod, str, str, str], None]   # (pod, type, reason, message)


class ImageResolver(Protocol):
    def resolve(self, ref: str) -> Image | None: ...


class Registry(Protocol):
    """Pulls one reference into the node's image store (blocking; run in a thread);
    `credentials` (from the pod's imagePullSecrets) is passed only when there are some."""
    def pull(self, *, ref: str, progress: "ProgressLog") -> str: ...


class StoreRegistry:
    """The real Registry: agent.images.registry.pull into the agent's ImageStore.
    Plain http only for localhost/127.0.0.1 (and SKIFF_INSECURE_REGISTRIES), as
    the registry client decides."""

    def __init__(self, *, store) -> None:
        self.store = store

    def pull(self, *, ref: str, progress: "ProgressLog", credentials=None) -> str:
        from agent.images.registry import pull
        return pull(store=self.store, ref=ref, progress=progress, credentials=credentials)


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: Always for :latest or no tag, else IfNotPresent (a digest: IfNotPresent)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else ""
    return "IfNotPresent" if "@" in image or (tag and tag != "latest") else "Always"


class ProgressLog:
    """The text stream registry.pull reports progress to: each line is logged,
    and layers and bytes are counted for the summary line."""
    _BYTES = re.compile(r"Pull complete \((\d+) bytes\)")

    def __init__(self, ref: str, on_source: Callable[[str], None] | None = None) -> None:
        self.ref = ref
        self.layers_pulled = self.layers_present = self.bytes_pulled = 0
        self._partial = ""
        self.node = ""   # the peer node the image came from (decision 33); "" a registry
        self._on_source = on_source

    def source(self, node: str) -> None:
        """The registry says where it fetches from: a peer node (called from the pull's thread)."""
        self.node = node
        if self._on_source is not None:
            self._on_source(node)

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in filter(None, (ln.strip() for ln in lines)):
            log.info("pulling %s: %s", self.ref, line)
            m = self._BYTES.search(line)
            if m:
                self.layers_pulled += 1
                self.bytes_pulled += int(m.group(1))
            elif line.endswith("Already exists"):
                self.layers_present += 1
        return len(text)

    def flush(self) -> None:
        pass


@dataclass(frozen=True)
class PullOutcome:
    image: Image | None = None
    waiting: tuple[str, str] | None = None   # (reason, message) while there is no image
    retry_after: float | None = None          # seconds; None: the puller wakes the pod itself


@dataclass
class _Wait:
    pod: types_pb2.Pod
    image: str                 # as the container names it
    ref: str                   # normalized: what is pulled, the coalescing key
    since: float               # monotonic time the pod asked


@dataclass
class _Result:
    image: Image | None
    error: str = ""


@dataclass
class _Pull:
    task: asyncio.Task
    started: float
    waiters: set[WaitKey] = field(default_factory=set)
    progress: ProgressLog | None = None


class ImagePuller:
    def __init__(self, *, images: ImageResolver, registry: Registry | None, clock: Clock | None = None,
                 default_policy: str = "IfNotPresent", backoff: RestartBackoff | None = None,
                 on_ready: Callable[[str], None] | None = None, events: EventSink | None = None,
                 max_parallel: int = 2) -> None:
        if default_policy not in DEFAULT_POLICY_MODES:
            raise ValueError(f"default_policy: {default_policy!r} is not one of {', '.join(DEFAULT_POLICY_MODES)}")
        self.images, self.registry = images, registry
        self.clock = clock or SystemClock()
        self.default_policy = default_policy
        self.backoff = backoff or RestartBackoff(initial=PULL_BACKOFF_INITIAL, maximum=PULL_BACKOFF_MAX)
        self.on_ready = on_ready or (lambda uid: None)
        self.events = events
        self._slots = asyncio.Semaphore(max_parallel)   # pulls of different references at once
        self._pulls: dict[str, _Pull] = {}            # normalized ref -> the pull under way
        self._waits: dict[WaitKey, _Wait] = {}
        self._results: dict[WaitKey, _Result] = {}    # ended pulls not yet taken by their pod
        self._failed: dict[Key, tuple[float, str]] = {}   # last failure: (clock timestamp, error)

    def policy_of(self, container: types_pb2.Container) -> str:
        if container.image_pull_policy:
            return container.image_pull_policy
        if self.default_policy == "kubernetes":
            return default_pull_policy(container.image)
        return self.default_policy

    def busy(self, *, pod_uid: str, container: types_pb2.Container) -> bool:
        """A pull for this container is under way or has ended untaken (its start is in progress)."""
        key = (pod_uid, container.name, container.image)
        return key in self._waits or key in self._results

    async def ensure(self, *, pod: types_pb2.Pod, container: types_pb2.Container,
                     credentials: object = None) -> PullOutcome:
        """The image the container runs, or why it waits (see the module docstring);
        credentials: for the image's registry, from the pod's imagePullSecrets."""
        uid, ref = pod.metadata.uid, container.image
        wkey, key = (uid, container.name, ref), (uid, ref)
        result = self._results.pop(wkey, None)
        if result is not None:
            if result.image is not None:
                return PullOutcome(image=result.image)
            return PullOutcome(waiting=("ErrImagePull", result.error), retry_after=self._backoff_left(key))
        if wkey in self._waits:
            return PullOutcome(waiting=("ContainerCreating", ""))
        try:
            normalized = normalize(ref)
        except InvalidReference as exc:
            message = f'Failed to apply default image tag "{ref}": couldn\'t parse image name "{ref}": {exc}'
            self._event(pod, "Warning", "InspectFailed", message)
            return PullOutcome(waiting=("InvalidImageName", message))
        policy = self.policy_of(container)
        present = None if policy == "Always" else await asyncio.to_thread(self.images.resolve, ref)
        if present is not None:
            self._event(pod, "Normal", "Pulled", f'Container image "{ref}" already present on machine')
            return PullOutcome(image=present)
        if policy == "Never":
            message = f'Container image "{ref}" is not present with pull policy of Never'
            self._event(pod, "Warning", "ErrImageNeverPull", message)
            return PullOutcome(waiting=("ErrImageNeverPull", message), retry_after=PULL_BACKOFF_INITIAL)
        left = self._backoff_left(key)
        if left > 0:
            message = f'Back-off pulling image "{ref}"'
            self._event(pod, "Normal", "BackOff", message)
            self._event(pod, "Warning", "Failed", "Error: ImagePullBackOff")
            last_error = self._failed[key][1]
            return PullOutcome(waiting=("ImagePullBackOff", f"{message}: ErrImagePull: {last_error}"),
                               retry_after=left)
        self._join(wkey, _Wait(pod=pod, image=ref, ref=normalized, since=time.monotonic()), credentials)
        return PullOutcome(waiting=("ContainerCreating", ""))

    def _backoff_left(self, key: Key) -> float:
        failed = self._failed.get(key)
        if failed is None:
            return 0.0
        return self.backoff.remaining(key, finished_at=failed[0], now=self.clock.now())

    def _event(self, pod: types_pb2.Pod, kind: str, reason: str, message: str) -> None:
        if self.events is not None:
            self.events(pod, kind, reason, message)

    # ------------------------------------------------------------ the pulls

    def _join(self, wkey: WaitKey, wait: _Wait, credentials: object = None) -> None:
        self._waits[wkey] = wait
        self._event(wait.pod, "Normal", "Pulling", f'Pulling image "{wait.image}"')
        pull = self._pulls.get(wait.ref)
        if pull is None:
            loop = asyncio.get_running_loop()
            progress = ProgressLog(wait.ref, on_source=lambda node, ref=wait.ref: loop.call_soon_threadsafe(
                self._announce_source, ref, node))
            task = loop.create_task(self._pull(wait.ref, credentials, progress), name=f"pull-{wait.ref}")
            pull = self._pulls[wait.ref] = _Pull(task=task, started=time.monotonic(), progress=progress)
            task.add_done_callback(lambda t, ref=wait.ref: self._finish(ref, t))
        else:
            log.info("pull of %s already under way: pod %s/%s waits for it", wait.ref,
                     wait.pod.metadata.namespace, wait.pod.metadata.name)
        pull.waiters.add(wkey)

    def _announce_source(self, ref: str, node: str) -> None:
        """The pull of `ref` fetches from peer `node`: each pod waiting for it hears so."""
        pull = self._pulls.get(ref)
        for wkey in (pull.waiters if pull is not None else ()):
            wait = self._waits.get(wkey)
            if wait is not None:
                self._event(wait.pod, "Normal", "Pulling", f'Pulling image "{wait.image}" from node {node}')

    async def _pull(self, ref: str, credentials: object = None, progress: ProgressLog | None = None) -> Image:
        if self.registry is None:
            raise RuntimeError("this node has no registry client: images must be loaded or built here")
        progress = progress or ProgressLog(ref)
        started = time.monotonic()

        def work() -> Image:
            if credentials is not None:
                self.registry.pull(ref=ref, progress=progress, credentials=credentials)
            else:
                self.registry.pull(ref=ref, progress=progress)
            image = self.images.resolve(ref)
            if image is None:
                raise RuntimeError(f"{ref}: pulled, but the image store cannot resolve it")
            return image

        async with self._slots:
            image = await _in_daemon_thread(work, name=f"skiff-pull {ref}")
        log.info("pulled %s in %.1fs: %d layer(s) downloaded (%d bytes), %d already present", ref,
                 time.monotonic() - started, progress.layers_pulled, progress.bytes_pulled,
                 progress.layers_present)
        return image

    def _finish(self, ref: str, task: asyncio.Task) -> None:
        pull = self._pulls.pop(ref)
        if task.cancelled():
            for wkey in pull.waiters:
                self._waits.pop(wkey, None)
            return
        exc = task.exception()
        now, ended = self.clock.now(), time.monotonic()
        if exc is not None:
            log.warning("pulling %s failed: %s", ref, exc)
        for wkey in pull.waiters:
            wait = self._waits.pop(wkey, None)
            if wait is None:  # the pod was forgotten meanwhile
                continue
            uid, image = wkey[0], wkey[2]
            if exc is None:
                result = task.result()
                waited = ended - wait.since
                source = f" from node {pull.progress.node}" if pull.progress is not None and pull.progress.node else ""
                self._event(wait.pod, "Normal", "Pulled",
                            f'Successfully pulled image "{image}"{source} in '
                            f'{_duration(min(waited, ended - pull.started))} '
                            f'({_duration(waited)} including waiting). Image size: {result.size} bytes.')
                self._results[wkey] = _Result(image=result)
            else:
                error = str(exc) or type(exc).__name__
                message = f'Failed to pull image "{image}": {error}'
                self._event(wait.pod, "Warning", "Failed", message)
                self._event(wait.pod, "Warning", "Failed", "Error: ErrImagePull")
                # One failure counts once per (pod, image), even for two containers of it.
                if self._failed.get((uid, image), (None,))[0] != now:
                    self.backoff.next((uid, image), finished_at=now)
                self._failed[(uid, image)] = (now, message)
                self._results[wkey] = _Result(image=None, error=message)
            self.on_ready(uid)

    # ------------------------------------------------------------ housekeeping

    def forget(self, pod_uid: str) -> None:
        """The pod is gone: drop its waits, results and back-off (a pull it started goes on for others)."""
        for wkey in [k for k in self._waits if k[0] == pod_uid]:
            del self._waits[wkey]
        for wkey in [k for k in self._results if k[0] == pod_uid]:
            del self._results[wkey]
        for key in [k for k in self._failed if k[0] == pod_uid]:
            del self._failed[key]
        self.backoff.forget(pod_uid)

    async def drain(self) -> None:
        """Wait for the pulls under way to end (tests; they end in the results)."""
        while self._pulls:
            await asyncio.gather(*(p.task for p in list(self._pulls.values())), return_exceptions=True)

    async def close(self) -> None:
        """Stop: cancel the pulls' tasks. A thread in a download is a daemon: it does not hold
        up the agent's exit, and the store's atomic writes leave nothing half-written."""
        tasks = [p.task for p in self._pulls.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _in_daemon_thread(fn: Callable[[], Image], *, name: str) -> Image:
    """fn() in a daemon thread of its own. Not an executor: its worker threads are joined at
    interpreter exit, so a stopping agent would wait for a long download to end."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(result: Image | None, exc: BaseException | None) -> None:
        if future.done():   # cancelled: the agent stopped or the pull was abandoned
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            outcome: tuple[Image | None, BaseException | None] = (fn(), None)
        except BaseException as exc:  # handed to the awaiting task, which reports it
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future


def _duration(seconds: float) -> str:
    """As Go prints a time.Duration, roughly: 512ms, 1.234s."""
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.3f}s"
