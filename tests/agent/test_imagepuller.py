"""imagePullPolicy in the pod workers: policy matrix, defaulting, ErrImagePull →
ImagePullBackOff with kubelet's back-off, coalesced pulls, events.

Pod workers over FakeRuntime, an in-memory API, a fake clock and a fake
registry (a pull "adds" the image to FakeImages); reconcile is driven by hand
and `puller.drain()` waits for the pulls in the worker threads. One test uses
the real registry client against a closed loopback port (no traffic leaves the
machine); the real registry has tests/agent/test_image_pull_real.py.
"""
from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from agent.clock import FakeClock
from agent.config import ConfigError, config_from_args
from agent.imagepuller import ProgressLog, StoreRegistry, default_pull_policy
from agent.images.reference import normalize
from agent.images.store import ImageStore
from agent.podworkers import PodWorkers
from agent.runtime.fake import FakeImages, FakeRuntime
from tests.agent.fakeapi import FakeApi, FakeClient

IMAGE = "127.0.0.1:5000/app:1"


class FakeRegistry:
    """Pulls "succeed" by making FakeImages resolve the reference; `failing` ones raise.
    `gate`, when set, holds every pull until released (to see pulls overlap)."""

    def __init__(self, images: FakeImages) -> None:
        self.images = images
        self.failing: dict[str, str] = {}
        self.calls: list[str] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Semaphore(0)
        self._lock = threading.Lock()

    def pull(self, *, ref: str, progress: ProgressLog) -> str:
        with self._lock:
            self.calls.append(ref)
        self.entered.release()
        if self.gate is not None:
            self.gate.wait(timeout=30)
        if ref in self.failing:
            raise RuntimeError(self.failing[ref])
        print("abc123: Pull complete (42 bytes)", file=progress, flush=True)
        with self._lock:
            self.images.missing -= {r for r in self.images.missing if normalize(r) == ref}
        return "sha256:" + "0" * 64


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str]] = []   # (pod, type, reason, message)

    def record(self, pod, *, type: str, reason: str, message: str) -> None:
        self.seen.append((pod.metadata.name, type, reason, message))

    def forget(self, pod_uid: str) -> None:
        pass

    def reasons(self, pod: str) -> list[str]:
        return [r for p, _, r, _ in self.seen if p == pod]


class World:
    def __init__(self, tmp_path: Path, *, missing: set[str] = frozenset(), default_pull_policy="IfNotPresent"):
        self.api = FakeApi()
        self.clock = FakeClock()
        self.runtime = FakeRuntime(clock=self.clock, state_root=tmp_path / "rt")
        self.images = FakeImages(missing=set(missing))
        self.registry = FakeRegistry(self.images)
        self.events = Events()
        self.workers = PodWorkers(node_name="node-1", node_ip="10.0.0.5", pods=self.api,
                                  client=FakeClient(self.api), runtime=self.runtime, images=self.images,
                                  pods_dir=tmp_path / "pods", pids_limit=100, clock=self.clock,
                                  events=self.events, registry=self.registry,
                                  default_pull_policy=default_pull_policy)

    def add(self, name: str, *, image: str = IMAGE, policy: str = "", restart_policy: str = "Never") -> str:
        c = {"name": "main", "image": image}
        if policy:
            c["image_pull_policy"] = policy
        return self.api.add_pod(name, containers=[c], restart_policy=restart_policy).metadata.uid

    def waiting(self, name: str) -> tuple[str, str]:
        cs = self.api.pod(name).status.container_statuses[0]
        return cs.state.waiting.reason, cs.state.waiting.message

    def phase(self, name: str) -> str:
        return self.api.pod(name).status.phase

    def starts(self) -> int:
        return sum(1 for c in self.runtime.calls if c[0] == "start")


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("image,expected", [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("busybox:1.36", "IfNotPresent"),
    ("localhost:5000/app", "Always"), ("localhost:5000/app:2", "IfNotPresent"),
    ("127.0.0.1:5000/team/app:latest", "Always"),
    ("app@sha256:" + "a" * 64, "IfNotPresent"), ("app:1@sha256:" + "a" * 64, "IfNotPresent")])
def test_default_policy_is_kubernetes(image, expected):
    assert default_pull_policy(image) == expected


@pytest.mark.parametrize("policy,present,pulls,outcome", [
    ("Never", True, 0, "Running"), ("Never", False, 0, "ErrImageNeverPull"),
    ("IfNotPresent", True, 0, "Running"), ("IfNotPresent", False, 1, "Running"),
    ("Always", True, 1, "Running"), ("Always", False, 1, "Running")])
def test_policy_matrix(tmp_path, policy, present, pulls, outcome):
    async def scenario():
        w = World(tmp_path, missing=set() if present else {IMAGE})
        uid = w.add("p", policy=policy)
        await w.workers.reconcile(uid)
        if pulls:
            assert w.waiting("p") == ("ContainerCreating", "") and w.phase("p") == "Pending"
            assert w.starts() == 0
            await w.workers.puller.drain()
            assert w.workers.pending == {uid}   # the ended pull woke the pod
            await w.workers.reconcile(uid)
        assert w.registry.calls == [normalize(IMAGE)] * pulls
        if outcome == "Running":
            assert w.phase("p") == "Running" and w.starts() == 1
        else:
            assert w.phase("p") == "Pending" and w.waiting("p") == (
                outcome, f'Container image "{IMAGE}" is not present with pull policy of Never')
            assert w.starts() == 0
        expected_events = {
            0: ["Pulled", "Created", "Started"] if outcome == "Running" else ["ErrImageNeverPull"],
            1: ["Pulling", "Pulled", "Created", "Started"]}[pulls]
        assert w.events.reasons("p") == expected_events
    run(scenario())


@pytest.mark.parametrize("mode,pulls", [("kubernetes", 1), ("IfNotPresent", 0)])
def test_unset_policy_follows_the_node_default(tmp_path, mode, pulls):
    """A present `busybox` with no policy: Kubernetes' Always pulls it; the offline default uses it."""
    async def scenario():
        w = World(tmp_path, default_pull_policy=mode)
        uid = w.add("p", image="busybox")
        await w.workers.reconcile(uid)
        await w.workers.puller.drain()
        await w.workers.reconcile(uid)
        assert w.registry.calls == ["docker.io/library/busybox:latest"] * pulls
        assert w.phase("p") == "Running"
    run(scenario())


def test_failed_pull_is_err_image_pull_then_back_off_doubling_to_five_minutes(tmp_path):
    async def scenario():
        w = World(tmp_path, missing={IMAGE})
        w.registry.failing[normalize(IMAGE)] = "manifest unknown"
        uid = w.add("p", policy="IfNotPresent")
        error = f'Failed to pull image "{IMAGE}": manifest unknown'
        waits = []
        for attempt in range(1, 8):
            assert await w.workers.reconcile(uid) is None     # the pull runs; it wakes the pod
            assert w.waiting("p") == ("ContainerCreating", "")
            await w.workers.puller.drain()
            assert len(w.registry.calls) == attempt
            after = await w.workers.reconcile(uid)
            assert w.waiting("p") == ("ErrImagePull", error) and w.phase("p") == "Pending"
            waits.append(after)
            # Until the back-off ends: ImagePullBackOff, and no pull.
            assert await w.workers.reconcile(uid) == after
            assert w.waiting("p") == ("ImagePullBackOff", f'Back-off pulling image "{IMAGE}": ErrImagePull: {error}')
            w.clock.advance(after - 1)
            assert await w.workers.reconcile(uid) == 1
            assert w.waiting("p")[0] == "ImagePullBackOff" and len(w.registry.calls) == attempt
            w.clock.advance(1)
        assert waits == [10, 20, 40, 80, 160, 300, 300]
        assert w.starts() == 0 and w.phase("p") == "Pending"
        assert ("p", "Warning", "Failed", error) in w.events.seen
        assert ("p", "Normal", "BackOff", f'Back-off pulling image "{IMAGE}"') in w.events.seen
        # The registry gets the image: the next attempt pulls it and the pod runs.
        del w.registry.failing[normalize(IMAGE)]
        await w.workers.reconcile(uid)
        await w.workers.puller.drain()
        await w.workers.reconcile(uid)
        assert w.phase("p") == "Running" and w.starts() == 1
    run(scenario())


def test_pulls_of_one_reference_are_coalesced(tmp_path):
    async def scenario():
        w = World(tmp_path, missing={IMAGE, "127.0.0.1:5000/other:1"})
        w.registry.gate = threading.Event()
        uids = [w.add(f"p{i}", policy="IfNotPresent") for i in range(3)]
        other = w.add("q", image="127.0.0.1:5000/other:1", policy="IfNotPresent")
        for uid in uids + [other]:
            await w.workers.reconcile(uid)
        # Two different references are pulled side by side (two worker threads).
        for _ in range(2):
            assert await asyncio.to_thread(w.registry.entered.acquire, timeout=30)
        for uid in uids:   # reconciling again while the pull runs starts nothing new
            await w.workers.reconcile(uid)
        assert sorted(w.registry.calls) == sorted([normalize(IMAGE), "127.0.0.1:5000/other:1"])
        assert all(w.waiting(f"p{i}") == ("ContainerCreating", "") for i in range(3))
        w.registry.gate.set()
        await w.workers.puller.drain()
        for uid in uids + [other]:
            await w.workers.reconcile(uid)
        assert [w.phase(n) for n in ("p0", "p1", "p2", "q")] == ["Running"] * 4
        assert len(w.registry.calls) == 2
        for name in ("p0", "p1", "p2"):
            assert w.events.reasons(name) == ["Pulling", "Pulled", "Created", "Started"]
            [pulled] = [m for p, _, r, m in w.events.seen if p == name and r == "Pulled"]
            assert pulled.startswith(f'Successfully pulled image "{IMAGE}" in ') and "including waiting" in pulled
    run(scenario())


def test_a_pod_deleted_during_its_pull_goes_at_once(tmp_path):
    async def scenario():
        w = World(tmp_path, missing={IMAGE})
        w.registry.gate = threading.Event()
        uid = w.add("p", policy="IfNotPresent")
        await w.workers.reconcile(uid)
        assert await asyncio.to_thread(w.registry.entered.acquire, timeout=30)
        w.api.mark_deleted("p", grace=1)
        await w.workers.reconcile(uid)          # not held up by the pull
        assert ("default", "p") in w.api.deleted and w.runtime.sandboxes == {}
        w.registry.gate.set()
        await w.workers.puller.drain()
        assert not w.workers.puller._results and not w.workers.puller._waits
    run(scenario())


def test_always_restarts_pull_again_without_extra_crash_back_off(tmp_path):
    async def scenario():
        w = World(tmp_path)
        uid = w.add("p", policy="Always", restart_policy="Always")
        await w.workers.reconcile(uid)
        await w.workers.puller.drain()
        await w.workers.reconcile(uid)
        first = w.runtime.by_name(uid, "main")[-1]
        w.runtime.exit(first.id, 1)
        await w.workers.reconcile(uid)           # the first restart is immediate: it pulls
        assert w.waiting("p") == ("ContainerCreating", "")
        await w.workers.puller.drain()
        assert len(w.registry.calls) == 2
        await w.workers.reconcile(uid)           # pulled: started now, not held by CrashLoopBackOff
        cs = w.api.pod("p").status.container_statuses[0]
        assert cs.state.HasField("running") and cs.restart_count == 1
    run(scenario())


def test_invalid_image_name(tmp_path):
    async def scenario():
        w = World(tmp_path)
        uid = w.add("p", image="Not/Valid:Ref!", policy="IfNotPresent")
        await w.workers.reconcile(uid)
        reason, message = w.waiting("p")
        assert reason == "InvalidImageName" and "Not/Valid:Ref!" in message
        assert w.registry.calls == [] and w.starts() == 0
    run(scenario())


def test_an_unreachable_registry_is_a_clean_err_image_pull(tmp_path):
    """The real registry client and store, against a loopback port nobody listens on."""
    async def scenario():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]            # closed again: connections are refused
        ref = f"127.0.0.1:{port}/app:1"
        root = Path(tempfile.mkdtemp(prefix="skiff-test-pull-", dir=tmp_path))
        store = ImageStore(root=root / "images")
        w = World(tmp_path)
        w.workers.puller.images = store
        w.workers.puller.registry = StoreRegistry(store=store)
        uid = w.add("p", image=ref, policy="IfNotPresent")
        await w.workers.reconcile(uid)
        await w.workers.puller.drain()
        await w.workers.reconcile(uid)
        reason, message = w.waiting("p")
        assert reason == "ErrImagePull" and message.startswith(f'Failed to pull image "{ref}": ')
        assert "cannot connect" in message and w.phase("p") == "Pending"
        assert store.list() == []
        await w.workers.shutdown()
    run(scenario())


def test_default_pull_policy_flag():
    assert config_from_args(["--node-name", "n"]).default_pull_policy == "IfNotPresent"
    assert config_from_args(["--node-name", "n", "--default-pull-policy", "kubernetes"]).default_pull_policy \
        == "kubernetes"
    with pytest.raises(SystemExit):   # argparse: not one of the choices
        config_from_args(["--node-name", "n", "--default-pull-policy", "Sometimes"])


def test_default_pull_policy_is_validated():
    from dataclasses import replace

    from agent.config import AgentConfig, validate
    with pytest.raises(ConfigError, match="--default-pull-policy"):
        validate(replace(AgentConfig(node_name="n"), default_pull_policy="Always"))


def test_an_image_fetched_from_a_peer_node_says_so_in_the_events(tmp_path):
    """The registry (agent/peerimages.ClusterRegistry in the agent) names the peer node it
    fetches from: the pod hears `Pulling image "x" from node N` and `... pulled ... from node N`."""
    async def scenario():
        w = World(tmp_path, missing={"my-web-server:v1"})
        real_pull = w.registry.pull

        def pull_from_peer(*, ref: str, progress: ProgressLog) -> str:
            progress.source("skiff-node-1")
            return real_pull(ref=ref, progress=progress)
        w.registry.pull = pull_from_peer
        uid = w.add("p", image="my-web-server:v1", policy="IfNotPresent")
        await w.workers.reconcile(uid)
        await w.workers.puller.drain()
        await asyncio.sleep(0)   # the source was announced from the pull's thread
        await w.workers.reconcile(uid)
        assert w.phase("p") == "Running"
        messages = [(r, m) for p, _, r, m in w.events.seen if p == "p" and r in ("Pulling", "Pulled")]
        assert messages[:2] == [("Pulling", 'Pulling image "my-web-server:v1"'),
                                ("Pulling", 'Pulling image "my-web-server:v1" from node skiff-node-1')]
        assert messages[2][1].startswith('Successfully pulled image "my-web-server:v1" from node skiff-node-1 in ')
    run(scenario())
