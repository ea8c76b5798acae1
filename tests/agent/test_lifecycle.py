"""Lifecycle hooks and termination messages over the fake runtime: postStart
runs before the container counts as started and a failure kills it; preStop
runs before the stop signal; terminationMessagePath and
FallbackToLogsOnError fill state.terminated.message."""
from __future__ import annotations

import asyncio

from tests.agent.test_podworkers import World


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def record(self, pod, *, type: str, reason: str, message: str) -> None:
        self.seen.append((reason, message))

    def forget(self, uid: str) -> None:
        pass


def _world(tmp_path, fails: set[str] = frozenset(), **kw) -> World:
    w = World(tmp_path, **kw)
    w.workers.events = Recorder()
    w.runtime.exec_handler = lambda argv, data: (b"", b"hook failed\n", 1) if argv[0] in fails else (b"", b"", 0)
    return w


def test_post_start_failure_kills_the_container(tmp_path):
    async def scenario():
        w = _world(tmp_path, fails={"warm-up"})
        uid = w.api.add_pod("hooked", restart_policy="Never").metadata.uid
        w.api.pods[("default", "hooked")].spec.containers[0].lifecycle.post_start.exec.command.append("warm-up")
        await w.workers.reconcile(uid)
        status, cs = w.status("hooked")
        assert status.phase == "Failed" and cs.state.terminated.reason == "Error"
        assert ("FailedPostStartHook", "PostStartHook failed: hook failed") in w.workers.events.seen
        calls = [c[0] for c in w.runtime.calls if c[0] in ("start", "exec", "stop")]
        assert calls[:3] == ["start", "exec", "stop"]
    asyncio.run(scenario())


def test_pre_stop_runs_before_the_stop_signal(tmp_path):
    async def scenario():
        w = _world(tmp_path)
        uid = w.api.add_pod("drain", grace=20).metadata.uid
        w.api.pods[("default", "drain")].spec.containers[0].lifecycle.pre_stop.exec.command.append("drain")
        await w.workers.reconcile(uid)
        cid = w.current(uid).id
        w.api.mark_deleted("drain", grace=20)
        await w.workers.reconcile(uid)
        calls = [c for c in w.runtime.calls if c[1] == cid and c[0] in ("exec", "stop")]
        assert calls == [("exec", cid), ("stop", cid)]
        assert 2 <= w.runtime.stop_graces[cid] <= 20
    asyncio.run(scenario())


def test_termination_messages(tmp_path):
    async def scenario():
        w = _world(tmp_path)
        uid = w.api.add_pod("msg", restart_policy="Never",
                            containers=[{"name": "file"}, {"name": "logs"}]).metadata.uid
        spec = w.api.pods[("default", "msg")].spec
        spec.containers[0].termination_message_path = "/tmp/message"
        spec.containers[1].termination_message_policy = "FallbackToLogsOnError"
        await w.workers.reconcile(uid)
        config = w.runtime.containers[w.current(uid, "file").id].config
        (mount,) = [m for m in config.mounts if m.target == "/tmp/message"]
        with open(mount.source, "w") as f:
            f.write("all done")
        logs_config = w.runtime.containers[w.current(uid, "logs").id].config
        logs_config.log_path.write_text("".join(f"line {i}\n" for i in range(100)))
        w.runtime.exit(w.current(uid, "file").id, 0)
        w.runtime.exit(w.current(uid, "logs").id, 3)
        await w.workers.reconcile(uid)
        pod = w.api.pod("msg")
        file_cs, logs_cs = pod.status.container_statuses
        assert file_cs.state.terminated.message == "all done"
        assert logs_cs.state.terminated.message.splitlines() == [f"line {i}" for i in range(20, 100)]
    asyncio.run(scenario())


def test_a_post_start_hook_gives_its_start_slot_back_while_it_runs(tmp_path):
    async def scenario():
        w = _world(tmp_path, start_slots=1)
        gate = asyncio.Event()
        hook = w.workers._hook

        async def slow_hook(*args):   # a postStart that takes until the gate opens
            await gate.wait()
            return await hook(*args)
        w.workers._hook = slow_hook
        hooked = w.api.add_pod("hooked").metadata.uid
        w.api.pods[("default", "hooked")].spec.containers[0].lifecycle.post_start.exec.command.append("warm-up")
        plain = w.api.add_pod("plain").metadata.uid
        first = asyncio.create_task(w.workers.reconcile(hooked))
        for _ in range(20):
            await asyncio.sleep(0)
        await asyncio.wait_for(w.workers.reconcile(plain), 5)   # the only slot is free meanwhile
        assert w.status("plain")[0].phase == "Running" and not first.done()
        gate.set()
        await asyncio.wait_for(first, 5)
        assert w.status("hooked")[0].phase == "Running"
    asyncio.run(scenario())
