"""Probes over the fake runtime: thresholds, readiness both ways, a liveness
restart once per failureThreshold window, startup gating, timing fields.

Deterministic: probe workers sleep on `Ticks`, which wakes them only when
the test says a period has passed; pods are reconciled by hand when the
prober wakes them (as their worker would be)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from agent.prober import ProbeState
from agent.prober.state import LIVENESS, READINESS
from proto.skiff.v1 import types_pb2
from tests.agent.test_podworkers import World


class Ticks:
    """A sleep() that returns when the test calls tick()."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self._waiting: list[asyncio.Future] = []

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        fut = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        await fut

    async def tick(self, times: int = 1) -> None:
        for _ in range(times):
            await _settle_tasks()    # workers just started reach their first sleep
            waiting, self._waiting = self._waiting, []
            for fut in waiting:
                if not fut.done():
                    fut.set_result(None)
            await _settle_tasks()    # every worker runs its probe and sleeps again


async def _settle_tasks() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def record(self, pod, *, type: str, reason: str, message: str) -> None:
        self.seen.append((type, reason, message))

    def reasons(self, reason: str) -> list[str]:
        return [m for _, r, m in self.seen if r == reason]


class ProbeWorld(World):
    def __init__(self, tmp_path: Path) -> None:
        self.ticks = Ticks()
        self.events = Events()
        self.healthy: dict[str, bool] = {}     # argv[0] of a probe command -> its answer
        super().__init__(tmp_path)
        self.runtime.exec_handler = self._exec

    def new_workers(self):
        workers = super().new_workers()
        workers.events = self.events
        workers.prober.sleep = self.ticks.sleep
        workers.prober.events = workers._event
        return workers

    def _exec(self, argv, data):
        ok = self.healthy.get(argv[0], True)
        return (b"", b"", 0) if ok else (b"", f"{argv[0]}: unhealthy\n".encode(), 1)

    def add(self, name: str, *, restart_policy: str = "Always", **probes: dict) -> str:
        pod = self.api.add_pod(name, restart_policy=restart_policy)
        stored = self.api.pods[("default", name)]
        for field, settings in probes.items():
            probe: types_pb2.Probe = getattr(stored.spec.containers[0], field)
            probe.exec.command.append(settings.pop("command"))
            for key, value in settings.items():
                setattr(probe, key, value)
        return pod.metadata.uid

    async def settle(self, uid: str) -> None:
        """Reconcile the pod if the prober woke it."""
        if uid in self.workers.pending:
            self.workers.pending.discard(uid)
            await self.workers.reconcile(uid)


def run(coro):
    return asyncio.run(coro)


def test_probe_state_thresholds():
    s = ProbeState.of(READINESS, success_threshold=2, failure_threshold=3)
    assert s.result is False
    assert [s.observe(ok) for ok in (True, False, True, True)] == [False, False, False, True]
    assert [s.observe(ok) for ok in (False, False, True, False, False, False)] == [False] * 5 + [True]
    live = ProbeState.of(LIVENESS, success_threshold=1, failure_threshold=1)
    assert live.result is True and live.observe(False) and live.result is False


def test_readiness_drives_ready_both_ways(tmp_path):
    async def scenario():
        w = ProbeWorld(tmp_path)
        uid = w.add("web", readiness_probe=dict(command="ready", success_threshold=2, failure_threshold=2,
                                                  period_seconds=7, initial_delay_seconds=4))
        await w.workers.reconcile(uid)
        status, cs = w.status("web")
        assert status.phase == "Running" and cs.state.HasField("running")
        assert (cs.started, cs.ready) == (True, False)   # readiness starts failed
        assert {c.type: c.status for c in status.conditions}["Ready"] == "False"
        await w.ticks.tick()          # the initial delay
        await w.settle(uid)
        assert not w.status("web")[1].ready      # one success of two
        await w.ticks.tick()
        await w.settle(uid)
        status, cs = w.status("web")
        assert cs.ready and {c.type: c.status for c in status.conditions}["Ready"] == "True"
        assert w.ticks.asked[:2] == [4, 7]
        w.healthy["ready"] = False
        await w.ticks.tick()
        await w.settle(uid)
        assert w.status("web")[1].ready           # one failure of two
        await w.ticks.tick()
        await w.settle(uid)
        status, cs = w.status("web")
        assert not cs.ready and cs.state.HasField("running") and cs.restart_count == 0
        ready = {c.type: c for c in status.conditions}["Ready"]
        assert (ready.status, ready.reason) == ("False", "ContainersNotReady")
        assert w.events.reasons("Unhealthy") == ["Readiness probe failed: ready: unhealthy"] * 2
        await w.workers.shutdown()
    run(scenario())


def test_liveness_failure_restarts_once_per_failure_threshold_window(tmp_path):
    async def scenario():
        w = ProbeWorld(tmp_path)
        uid = w.add("live", liveness_probe=dict(command="alive", failure_threshold=3,
                                                  termination_grace_period_seconds=4))
        await w.workers.reconcile(uid)
        first = w.current(uid).id
        w.healthy["alive"] = False
        await w.ticks.tick()         # failure 1 ran at once (no initial delay); this is failure 2
        await w.settle(uid)
        assert w.status("live")[1].restart_count == 0 and w.current(uid).id == first
        await w.ticks.tick()         # failure 3: kill
        await w.settle(uid)
        status, cs = w.status("live")
        assert cs.restart_count == 1 and cs.state.HasField("running")
        assert cs.last_state.terminated.exit_code == 143
        assert w.runtime.stop_graces[first] == 4   # the probe's own grace period
        assert w.events.reasons("Killing") == ["Container main failed liveness probe, will be restarted"]
        assert len(w.events.reasons("Unhealthy")) == 3
        # The new attempt starts from scratch: two more failures do not kill it.
        await w.ticks.tick()
        await w.settle(uid)
        assert w.status("live")[1].restart_count == 1
        assert len(w.events.reasons("Killing")) == 1
        await w.ticks.tick()
        await w.settle(uid)
        assert len(w.events.reasons("Killing")) == 2
        assert w.status("live")[1].state.waiting.reason == "CrashLoopBackOff"
        await w.workers.shutdown()
    run(scenario())


def test_liveness_failure_with_restart_never_ends_the_pod(tmp_path):
    async def scenario():
        w = ProbeWorld(tmp_path)
        uid = w.add("once", restart_policy="Never", liveness_probe=dict(command="alive", failure_threshold=1))
        await w.workers.reconcile(uid)
        w.healthy["alive"] = False
        await w.ticks.tick()
        await w.settle(uid)
        status, cs = w.status("once")
        assert status.phase == "Failed" and cs.state.terminated.reason == "Error" and cs.restart_count == 0
    run(scenario())


def test_startup_probe_holds_liveness_and_readiness_back(tmp_path):
    async def scenario():
        w = ProbeWorld(tmp_path)
        uid = w.add("slow", startup_probe=dict(command="started", failure_threshold=30, period_seconds=1),
                    liveness_probe=dict(command="alive", failure_threshold=1),
                    readiness_probe=dict(command="ready"))
        w.healthy.update(started=False, alive=False)
        await w.workers.reconcile(uid)
        await w.ticks.tick(4)        # the first run, then four periods
        await w.settle(uid)
        cs = w.status("slow")[1]
        assert (cs.started, cs.ready, cs.restart_count) == (False, False, 0)
        ran = [w.runtime.containers[w.current(uid).id].config.id for c in w.runtime.calls if c[0] == "exec"]
        assert len(ran) == 5                 # only the startup probe ran
        assert w.events.reasons("Unhealthy") == ["Startup probe failed: started: unhealthy"] * 5
        w.healthy.update(started=True, alive=True)
        await w.ticks.tick(2)
        await w.settle(uid)
        cs = w.status("slow")[1]
        assert (cs.started, cs.ready, cs.restart_count) == (True, True, 0)
        w.healthy["alive"] = False           # now liveness counts
        await w.ticks.tick()
        await w.settle(uid)
        assert w.status("slow")[1].restart_count == 1
        assert w.events.reasons("Killing") == ["Container main failed liveness probe, will be restarted"]
        await w.workers.shutdown()
    run(scenario())


def test_a_startup_probe_that_never_succeeds_kills_the_container(tmp_path):
    async def scenario():
        w = ProbeWorld(tmp_path)
        uid = w.add("stuck", startup_probe=dict(command="started", failure_threshold=2))
        w.healthy["started"] = False
        await w.workers.reconcile(uid)
        await w.ticks.tick(2)
        await w.settle(uid)
        assert w.status("stuck")[1].restart_count == 1
        assert w.events.reasons("Killing") == ["Container main failed startup probe, will be restarted"]
        await w.workers.shutdown()
    run(scenario())


def test_the_wheel_wakes_every_sleeper_never_before_its_time():
    """Probe workers sleep on a shared Wheel (one loop timer per boundary with
    sleepers, not one per worker): each sleep lasts at least what was asked."""
    from agent.prober.manager import Wheel

    async def scenario():
        wheel, loop = Wheel(), asyncio.get_running_loop()

        async def sleeper(seconds):
            start = loop.time()
            await wheel.sleep(seconds)
            return loop.time() - start - seconds
        cancelled = asyncio.ensure_future(wheel.sleep(0.05))
        await asyncio.sleep(0)
        cancelled.cancel()
        return await asyncio.gather(*(sleeper(0.01 * (i % 7)) for i in range(60)))
    lateness = run(scenario())
    assert len(lateness) == 60 and min(lateness) >= -1e-3   # the loop clock's granularity


def test_a_probe_target_keeps_the_pods_identity_and_the_containers_probes_not_the_pod():
    from agent.prober.manager import Target
    pod = types_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "web", "default", "u-1"
    pod.metadata.labels["app"] = "web"
    probed = pod.spec.containers.add(name="app", image="busybox")
    probed.ports.add(name="http", container_port=8080)
    probed.env.add(name="A", value="b")
    probed.readiness_probe.http_get.path, probed.readiness_probe.http_get.port = "/", "http"
    plain = pod.spec.containers.add(name="side", image="busybox")
    plain.ports.add(name="metrics", container_port=9100)
    target = Target.of(pod, probed, container_id="c1", netns=None, pod_ip="10.1.0.2")
    assert (target.pod.metadata.name, target.pod.metadata.namespace, target.pod.metadata.uid) == ("web", "default", "u-1")
    assert not target.pod.metadata.labels and not target.pod.spec.containers
    assert target.container.readiness_probe == probed.readiness_probe   # a named port still resolves:
    assert [(p.name, p.container_port) for p in target.container.ports] == [("http", 8080)]
    assert not target.container.env and not target.container.image
    bare = Target.of(pod, plain, container_id="c2", netns=None, pod_ip="10.1.0.2").container
    assert bare == types_pb2.Container(name="side")   # nothing to probe: only its name
