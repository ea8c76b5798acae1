"""Pod worker reconcile tests over FakeRuntime, an in-memory API and a fake clock.

Deterministic: the tests drive `reconcile(uid)` by hand (the workers are not
started), end containers with the fake runtime's hooks and move the clock.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.clock import FakeClock
from agent.podworkers import PodWorkers
from agent.runtime.fake import FakeImages, FakeRuntime
from agent.runtime.interface import State
from proto.skiff.v1 import types_pb2
from tests.agent.fakeapi import FakeApi, FakeClient


class World:
    def __init__(self, tmp_path: Path, *, missing_images: set[str] | None = None,
                 start_slots: int | None = None) -> None:
        self.start_slots = start_slots
        self.api = FakeApi()
        self.client = FakeClient(self.api)
        self.clock = FakeClock()
        self.runtime = FakeRuntime(clock=self.clock, state_root=tmp_path / "rt")
        self.images = FakeImages(missing=missing_images)
        self.pods_dir = tmp_path / "pods"
        self.workers = self.new_workers()

    def new_workers(self) -> PodWorkers:
        return PodWorkers(node_name="node-1", node_ip="10.0.0.5", pods=self.api, client=self.client,
                          runtime=self.runtime, images=self.images, pods_dir=self.pods_dir, pids_limit=100,
                          clock=self.clock, **({"start_slots": self.start_slots} if self.start_slots else {}))

    def status(self, name: str, container: int = 0):
        pod = self.api.pod(name)
        return pod.status, pod.status.container_statuses[container]

    def current(self, pod_uid: str, name: str = "main"):
        return self.runtime.by_name(pod_uid, name)[-1]


def run(coro):
    return asyncio.run(coro)


def test_pod_runs_then_succeeds_with_exit_zero(tmp_path):
    async def scenario():
        w = World(tmp_path)
        pod = w.api.add_pod("hello", restart_policy="Never")
        uid = pod.metadata.uid
        await w.workers.reconcile(uid)
        status, cs = w.status("hello")
        assert status.phase == "Running"
        assert cs.state.running.started_at.seconds > 0 and cs.ready
        assert status.host_ip == "10.0.0.5" and status.start_time.seconds > 0
        assert {c.type: c.status for c in status.conditions} == {
            "Initialized": "True", "Ready": "True", "ContainersReady": "True", "PodScheduled": "True"}
        container = w.current(uid)
        assert cs.container_id == f"skiff://{container.id}"
        log_path = w.runtime.containers[container.id].config.log_path
        assert log_path == w.pods_dir / f"default_hello_{uid}" / "main" / "0.log"

        w.clock.advance(5)
        w.runtime.exit(container.id, 0)
        await w.workers.reconcile(uid)
        status, cs = w.status("hello")
        assert status.phase == "Succeeded"
        assert cs.state.terminated.exit_code == 0 and cs.state.terminated.reason == "Completed"
        assert cs.state.terminated.finished_at.seconds - cs.state.terminated.started_at.seconds == 5
        assert not cs.ready and cs.restart_count == 0
        # A finished pod frees what it held; its status stays.
        assert w.runtime.containers == {} and w.runtime.sandboxes == {}
        await w.workers.reconcile(uid)
        assert [c for c in w.runtime.calls if c[0] == "start"] == [("start", container.id)]
    run(scenario())


@pytest.mark.parametrize("how,reason,code", [("exit", "Error", 3), ("oom", "OOMKilled", 137)])
def test_failed_container_with_restart_never_fails_the_pod(tmp_path, how, reason, code):
    async def scenario():
        w = World(tmp_path)
        uid = w.api.add_pod("crash", restart_policy="Never").metadata.uid
        await w.workers.reconcile(uid)
        cid = w.current(uid).id
        w.runtime.exit(cid, 3) if how == "exit" else w.runtime.oom(cid)
        await w.workers.reconcile(uid)
        status, cs = w.status("crash")
        assert status.phase == "Failed"
        assert (cs.state.terminated.reason, cs.state.terminated.exit_code) == (reason, code)
    run(scenario())


def test_on_failure_exit_zero_succeeds_and_always_restarts(tmp_path):
    async def scenario():
        w = World(tmp_path)
        ok = w.api.add_pod("ok", restart_policy="OnFailure").metadata.uid
        always = w.api.add_pod("always", restart_policy="Always").metadata.uid
        for uid in (ok, always):
            await w.workers.reconcile(uid)
            w.runtime.exit(w.current(uid).id, 0)
            await w.workers.reconcile(uid)
        assert w.status("ok")[0].phase == "Succeeded"
        status, cs = w.status("always")
        assert status.phase == "Running" and cs.restart_count == 1
        assert cs.last_state.terminated.reason == "Completed"
    run(scenario())


def test_crash_loop_back_off_doubles_to_five_minutes(tmp_path):
    async def scenario():
        w = World(tmp_path)
        uid = w.api.add_pod("loop", restart_policy="Always").metadata.uid
        await w.workers.reconcile(uid)
        waits = []
        for restart in range(1, 9):
            w.runtime.exit(w.current(uid).id, 1)
            requeue = await w.workers.reconcile(uid)
            status, cs = w.status("loop")
            if requeue is None:  # kubelet restarts the first crash at once
                assert cs.state.HasField("running") and cs.restart_count == restart
                continue
            assert cs.state.waiting.reason == "CrashLoopBackOff"
            assert cs.state.waiting.message.startswith(f"back-off {requeue:g}s restarting failed container=main")
            assert cs.last_state.terminated.exit_code == 1 and cs.restart_count == restart - 1
            assert status.phase == "Running"
            waits.append(requeue)
            w.clock.advance(requeue - 1)
            assert await w.workers.reconcile(uid) == 1  # still backing off, nothing started
            w.clock.advance(1)
            await w.workers.reconcile(uid)
            status, cs = w.status("loop")
            assert cs.state.HasField("running") and cs.restart_count == restart
        assert waits == [10, 20, 40, 80, 160, 300, 300]
        # Only the current and the previous attempt are kept in the runtime.
        assert len(w.runtime.by_name(uid, "main")) == 2
    run(scenario())


def test_missing_image_with_never_pull_stays_pending(tmp_path):
    async def scenario():
        w = World(tmp_path, missing_images={"nosuch:1.0"})
        uid = w.api.add_pod("noimg", containers=[{"name": "main", "image": "nosuch:1.0",
                                                  "image_pull_policy": "Never"}]).metadata.uid
        await w.workers.reconcile(uid)
        status, cs = w.status("noimg")
        assert status.phase == "Pending"
        assert cs.state.waiting.reason == "ErrImageNeverPull"
        assert cs.state.waiting.message == 'Container image "nosuch:1.0" is not present with pull policy of Never'
        assert not any(c[0] == "start" for c in w.runtime.calls)
        # The image appears (e.g. `skiff image load`): the next pass starts it.
        w.images.missing.clear()
        await w.workers.reconcile(uid)
        assert w.status("noimg")[0].phase == "Running"
    run(scenario())


def test_start_error_and_config_error_are_reported(tmp_path):
    async def scenario():
        w = World(tmp_path)
        w.runtime.fail_next_start("main", 'exec: "nosuch": executable file not found in $PATH')
        uid = w.api.add_pod("bad", restart_policy="Never").metadata.uid
        await w.workers.reconcile(uid)
        status, cs = w.status("bad")
        assert status.phase == "Failed"
        assert cs.state.terminated.reason == "StartError" and "nosuch" in cs.state.terminated.message

        root = w.api.add_pod("root", restart_policy="Never")
        root_pod = w.api.pods[("default", "root")]
        root_pod.spec.containers[0].security_context.run_as_non_root = True
        await w.workers.reconcile(root.metadata.uid)
        status, cs = w.status("root")
        assert status.phase == "Pending"
        assert cs.state.waiting.reason == "CreateContainerConfigError"
        assert "runAsNonRoot and image will run as root" in cs.state.waiting.message
    run(scenario())


def test_status_is_written_only_when_it_changes(tmp_path):
    async def scenario():
        w = World(tmp_path)
        uid = w.api.add_pod("calm").metadata.uid
        await w.workers.reconcile(uid)
        writes = w.api.status_writes
        w.clock.advance(60)
        for _ in range(3):
            await w.workers.reconcile(uid)
        assert w.api.status_writes == writes
    run(scenario())


class LaggingCache:
    """The pod informer's view as of freeze(): the API's own writes after it are not seen."""

    def __init__(self, api: FakeApi) -> None:
        self.api, self.frozen = api, {}

    def freeze(self) -> None:
        self.frozen = {key: self.api.get(key) for key in self.api.pods}

    def get(self, key):
        pod = self.frozen.get(key)
        return types_pb2.Pod.FromString(pod.SerializeToString()) if pod is not None else self.api.get(key)

    def list(self):
        return [self.get(key) for key in self.api.pods]


def test_a_cache_behind_the_agents_own_writes_causes_no_write(tmp_path):
    # The informer still shows the pod from before the agent's writes; a later sync must compute
    # the status on the agent's last write (its startTime and transition times), not on that copy.
    async def scenario():
        w = World(tmp_path)
        cache = LaggingCache(w.api)
        w.workers.pods = cache
        uid = w.api.add_pod("lagging").metadata.uid
        cache.freeze()
        await w.workers.reconcile(uid)
        written = w.api.pod("lagging").status
        writes = w.api.status_writes
        assert written.phase == "Running" and written.start_time.seconds > 0
        w.clock.advance(5)
        await w.workers.reconcile(uid)
        assert w.api.status_writes == writes
        assert w.api.pod("lagging").status == written
    run(scenario())

def test_status_write_survives_a_conflicting_change(tmp_path):
    async def scenario():
        w = World(tmp_path)
        uid = w.api.add_pod("busy", restart_policy="Never").metadata.uid
        await w.workers.reconcile(uid)
        stale = w.api.pod("busy")
        w.api.pods[("default", "busy")].metadata.labels["touched"] = "yes"
        w.api._bump(w.api.pods[("default", "busy")])  # someone else wrote meanwhile
        w.runtime.exit(w.current(uid).id, 0)
        w.workers.pods = _Frozen(stale)  # the cache still shows the old version
        await w.workers.reconcile(uid)
        pod = w.api.pod("busy")
        assert pod.status.phase == "Succeeded" and pod.metadata.labels["touched"] == "yes"
    run(scenario())


class _Frozen:
    def __init__(self, pod):
        self.pod = pod

    def get(self, key):
        return self.pod if key == (self.pod.metadata.namespace, self.pod.metadata.name) else None

    def list(self):
        return [self.pod]


def test_deletion_stops_removes_detaches_and_deletes_the_object(tmp_path):
    async def scenario():
        w = World(tmp_path)
        detached = []

        class Net:
            def attach(self, *, pod_id, netns_path, ports):
                return type("PodAddress", (), {"ip": "10.88.0.7"})()

            def detach(self, pod_id):
                detached.append(pod_id)

        w.workers.network = Net()
        uid = w.api.add_pod("doomed", containers=[{"name": "a"}, {"name": "b"}], grace=7).metadata.uid
        await w.workers.reconcile(uid)
        ids = {w.current(uid, "a").id, w.current(uid, "b").id}
        assert w.api.pod("doomed").status.pod_ip == "10.88.0.7"
        assert (w.pods_dir / f"default_doomed_{uid}").exists()
        w.api.mark_deleted("doomed", grace=7)
        await w.workers.reconcile(uid)
        stops = [c[1] for c in w.runtime.calls if c[0] == "stop"]
        removes = [c[1] for c in w.runtime.calls if c[0] == "remove"]
        assert set(stops) == ids and set(removes) == ids
        assert {w.runtime.stop_graces[i] for i in ids} == {7}
        order = [c[0] for c in w.runtime.calls]
        assert max(order.index("stop"), order.index("stop")) < order.index("remove") < order.index("remove_sandbox")
        assert detached == [uid]
        assert w.runtime.containers == {} and w.runtime.sandboxes == {}
        assert ("default", "doomed") in w.api.deleted and ("default", "doomed") not in w.api.pods
        assert not (w.pods_dir / f"default_doomed_{uid}").exists()
    run(scenario())


def test_pod_vanished_from_the_api_is_cleaned(tmp_path):
    async def scenario():
        w = World(tmp_path)
        uid = w.api.add_pod("ghost").metadata.uid
        await w.workers.reconcile(uid)
        del w.api.pods[("default", "ghost")]
        w.workers.on_pod_event(("default", "ghost"))
        assert uid in w.workers.pending
        await w.workers.reconcile(uid)
        assert w.runtime.containers == {} and w.runtime.sandboxes == {}
        assert uid not in w.workers.records
        assert list(w.runtime.stop_graces.values()) == [2]  # force-deleted: kubelet's minimum grace
    run(scenario())


def test_recovery_adopts_running_containers_without_restart(tmp_path):
    async def scenario():
        w = World(tmp_path)
        keep = w.api.add_pod("keep", restart_policy="Always").metadata.uid
        done = w.api.add_pod("done", restart_policy="Never").metadata.uid
        for uid in (keep, done):
            await w.workers.reconcile(uid)
        w.runtime.exit(w.current(keep).id, 1)   # one restart before the "crash"
        await w.workers.reconcile(keep)
        running_id = w.current(keep).id
        await w.workers.shutdown()               # the agent goes away; containers stay

        orphan = "0000-orphan"
        from agent.runtime.interface import SandboxConfig
        await w.runtime.create_sandbox(SandboxConfig(pod_id=orphan, namespace="default", name="old", hostname="old"))
        w.clock.advance(30)
        w.runtime.exit(w.current(done).id, 4)    # ended while no agent watched
        starts_before = [c for c in w.runtime.calls if c[0] == "start"]

        w.workers = w.new_workers()
        await w.workers.recover()
        for uid in (keep, done):
            await w.workers.reconcile(uid)
        assert [c for c in w.runtime.calls if c[0] == "start"] == starts_before
        status, cs = w.status("keep")
        assert status.phase == "Running" and cs.restart_count == 1
        assert cs.container_id == f"skiff://{running_id}"
        assert w.runtime.containers[running_id].status.state is State.RUNNING
        status, cs = w.status("done")
        assert status.phase == "Failed" and cs.state.terminated.exit_code == 4
        assert orphan not in w.runtime.sandboxes
    run(scenario())


def test_taken_host_port_is_a_pod_condition_not_a_crash(tmp_path, monkeypatch):
    class PortTaken(Exception):
        pass

    monkeypatch.setattr("agent.podnetwork.network_types", lambda: (PortTaken, _Port))

    class Net:
        free = False

        def attach(self, *, pod_id, netns_path, ports):
            assert [(p.host_port, p.container_port, p.protocol) for p in ports] == [(5000, 5000, "TCP")]
            if not self.free:
                raise PortTaken("host port 5000/TCP is already in use on 0.0.0.0")
            return type("PodAddress", (), {"ip": "10.88.0.9"})()

    async def scenario():
        w = World(tmp_path)
        net = w.workers.network = Net()
        uid = w.api.add_pod("web", containers=[{"name": "main", "host_ports": [5000]}]).metadata.uid
        assert await w.workers.reconcile(uid) is not None  # retried later
        status, cs = w.status("web")
        cond = {c.type: c for c in status.conditions}["PodReadyToStartContainers"]
        assert (cond.status, cond.reason) == ("False", "HostPortInUse") and "5000" in cond.message
        assert status.phase == "Pending" and cs.state.waiting.reason == "ContainerCreating"
        assert "5000" in cs.state.waiting.message
        assert not any(c[0] == "start" for c in w.runtime.calls)
        net.free = True
        await w.workers.reconcile(uid)
        status, _ = w.status("web")
        assert status.phase == "Running" and status.pod_ip == "10.88.0.9"
        assert "PodReadyToStartContainers" not in {c.type for c in status.conditions}
    run(scenario())


class _Port:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_sandbox_failure_is_shown_and_retried(tmp_path):
    async def scenario():
        w = World(tmp_path)
        w.runtime.fail_next_sandbox("clone(CLONE_NEWNET): Operation not permitted")
        uid = w.api.add_pod("box").metadata.uid
        assert await w.workers.reconcile(uid) is not None
        status, cs = w.status("box")
        cond = {c.type: c for c in status.conditions}["PodReadyToStartContainers"]
        assert cond.reason == "FailedCreatePodSandBox" and "CLONE_NEWNET" in cond.message
        assert status.phase == "Pending" and "CLONE_NEWNET" in cs.state.waiting.message
        await w.workers.reconcile(uid)
        status, _ = w.status("box")
        assert status.phase == "Running"
        assert "PodReadyToStartContainers" not in {c.type for c in status.conditions}
    run(scenario())


def test_metrics_count_pods_by_phase_starts_and_runtime_calls(tmp_path):
    async def scenario():
        w = World(tmp_path)
        done = w.api.add_pod("done", restart_policy="Never").metadata.uid
        live = w.api.add_pod("live").metadata.uid
        for uid in (done, live):
            await w.workers.reconcile(uid)
        w.clock.advance(2)
        w.runtime.exit(w.current(done).id, 0)
        await w.workers.reconcile(done)
        reg = w.workers.metrics.registry

        def phase(p):
            return reg.get_sample_value("skiff_agent_pods", {"node": "node-1", "phase": p})
        assert (phase("Running"), phase("Succeeded"), phase("Pending")) == (1, 1, 0)
        assert reg.get_sample_value("kubelet_started_containers_total", {"node": "node-1"}) == 2
        assert reg.get_sample_value("kubelet_runtime_operations_duration_seconds_count",
                                    {"operation_type": "start"}) == 2
        # Start latency: both pods were created at the fake clock's start and ran before it moved.
        assert reg.get_sample_value("kubelet_pod_start_duration_seconds_count", {"node": "node-1"}) == 2
        w.api.mark_deleted("live")
        await w.workers.reconcile(live)
        assert phase("Running") == 0
    run(scenario())


def test_init_containers_run_in_order_to_completion_before_the_app(tmp_path):
    async def scenario():
        w = World(tmp_path)
        uid = w.api.add_pod("init", init=[{"name": "one"}, {"name": "two"}]).metadata.uid
        await w.workers.reconcile(uid)
        pod = w.api.pod("init")
        conds = {c.type: c for c in pod.status.conditions}
        assert pod.status.phase == "Pending" and conds["Initialized"].status == "False"
        assert conds["Initialized"].message == "containers with incomplete status: [one two]"
        assert [c.name for c in pod.status.init_container_statuses] == ["one", "two"]
        assert pod.status.init_container_statuses[0].state.HasField("running")
        assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"
        assert [s.name for s in w.runtime.running()] == ["one"]

        w.runtime.exit(w.current(uid, "one").id, 0)
        await w.workers.reconcile(uid)
        assert [s.name for s in w.runtime.running()] == ["two"]
        w.runtime.exit(w.current(uid, "two").id, 0)
        await w.workers.reconcile(uid)
        pod = w.api.pod("init")
        assert pod.status.phase == "Running"
        assert {c.type: c.status for c in pod.status.conditions}["Initialized"] == "True"
        assert all(c.state.terminated.reason == "Completed" for c in pod.status.init_container_statuses)
        assert [s.name for s in w.runtime.running()] == ["main"]
        starts = [c for c in w.runtime.calls if c[0] == "start"]

        # A restarted agent does not run the init containers again.
        await w.workers.shutdown()
        w.workers = w.new_workers()
        await w.workers.recover()
        await w.workers.reconcile(uid)
        assert [c for c in w.runtime.calls if c[0] == "start"] == starts
        assert w.api.pod("init").status.phase == "Running"
    run(scenario())


@pytest.mark.parametrize("policy,phase", [("Never", "Failed"), ("Always", "Pending")])
def test_failed_init_container_fails_or_restarts_the_pod(tmp_path, policy, phase):
    async def scenario():
        w = World(tmp_path)
        uid = w.api.add_pod("badinit", init=[{"name": "setup"}], restart_policy=policy).metadata.uid
        await w.workers.reconcile(uid)
        w.runtime.exit(w.current(uid, "setup").id, 2)
        await w.workers.reconcile(uid)
        pod = w.api.pod("badinit")
        assert pod.status.phase == phase
        assert w.runtime.by_name(uid, "main") == []
        if policy == "Always":  # restarted (at once, the first time), with restartCount
            assert pod.status.init_container_statuses[0].restart_count == 1
            assert pod.status.init_container_statuses[0].state.HasField("running")
        else:
            assert pod.status.init_container_statuses[0].state.terminated.exit_code == 2
    run(scenario())


def test_changed_container_spec_restarts_the_container(tmp_path):
    async def scenario():
        w = World(tmp_path)
        uid = w.api.add_pod("upd").metadata.uid
        await w.workers.reconcile(uid)
        old = w.current(uid).id
        await w.workers.reconcile(uid)  # unchanged: nothing happens
        assert w.current(uid).id == old
        w.api.pods[("default", "upd")].spec.containers[0].image = "busybox:1.36"
        w.api._bump(w.api.pods[("default", "upd")])
        await w.workers.reconcile(uid)
        new = w.current(uid)
        assert new.id != old and new.image == "busybox:1.36" and new.state is State.RUNNING
        assert w.runtime.containers[old].status.state is State.EXITED and ("stop", old) in w.runtime.calls
        cs = w.status("upd")[1]
        assert cs.restart_count == 1 and cs.image == "busybox:1.36" and cs.state.HasField("running")
    run(scenario())


def test_at_most_start_slots_pods_are_in_their_first_setup_and_running_pods_never_wait(tmp_path):
    async def scenario():
        w = World(tmp_path, start_slots=2)
        running = w.api.add_pod("running").metadata.uid
        await w.workers.reconcile(running)
        gate, inside, most = asyncio.Event(), [], [0]
        create = w.runtime.create_sandbox

        async def slow_create(config):   # a sandbox that takes until the gate opens
            inside.append(config)
            most[0] = max(most[0], len(inside))
            await gate.wait()
            try:
                return await create(config)
            finally:
                inside.remove(config)
        w.runtime.create_sandbox = slow_create
        uids = [w.api.add_pod(f"new-{i}").metadata.uid for i in range(5)]
        setups = [asyncio.create_task(w.workers.reconcile(uid)) for uid in uids]
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(inside) == 2   # three wait for a slot
        w.runtime.exit(w.current(running).id, 1)
        await asyncio.wait_for(w.workers.reconcile(running), 5)   # a running pod's restart does not queue
        assert w.status("running")[1].restart_count == 1
        gate.set()
        await asyncio.wait_for(asyncio.gather(*setups), 5)
        assert most[0] == 2 and {w.status(f"new-{i}")[0].phase for i in range(5)} == {"Running"}
    run(scenario())
