"""Node registration facts, the Ready heartbeat with CAS retries, and the restart back-off."""
from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta, timezone

from agent.backoff import RestartBackoff
from agent.clock import FakeClock
from agent.node import NodeAgent, NodeIdentity, machine_status, memory_total_bytes
from proto.skiff.v1 import types_pb2
from skiff.client import AlreadyExists, Conflict, NotFound


def test_machine_status_describes_this_machine():
    status = machine_status(NodeIdentity("n1", "10.1.2.3", 12345))
    assert status.capacity["cpu"] == str(os.cpu_count())
    assert status.capacity["memory"] == f"{memory_total_bytes() // 1024}Ki" and status.capacity["pods"] == "110"
    assert dict(status.allocatable) == dict(status.capacity)
    assert [(a.type, a.address) for a in status.addresses] == [("InternalIP", "10.1.2.3"), ("Hostname", "n1")]
    assert status.node_info.kernel_version == os.uname().release
    assert status.node_info.container_runtime_version == "skiff://0.1.0"
    assert status.node_info.cgroup_version in ("v1", "v2") and status.node_info.operating_system == "linux"
    assert status.daemon_endpoints.kubelet_endpoint.port == 12345


class NodeStore:
    """A client holding one Node, with CAS, that can be told to conflict."""

    def __init__(self) -> None:
        self.node: types_pb2.Node | None = None
        self.rv = 0
        self.conflicts_left = 0
        self.gets = self.status_writes = 0

    async def create(self, node):
        if self.node is not None:
            raise AlreadyExists("exists")
        self.node = types_pb2.Node()
        self.node.CopyFrom(node)
        self.node.spec.pod_cidr = "10.88.1.0/24"  # as if IPAM had been quick
        return await self._stored()

    async def _stored(self):
        self.rv += 1
        self.node.metadata.resource_version = str(self.rv)
        out = types_pb2.Node()
        out.CopyFrom(self.node)
        return out

    async def get(self, kind, name, namespace="", resource_version=""):
        self.gets += 1
        if self.node is None:
            raise NotFound(name)
        out = types_pb2.Node()
        out.CopyFrom(self.node)
        return out

    async def update_status(self, node):
        self.status_writes += 1
        if self.node is None:
            raise NotFound(node.metadata.name)
        if self.conflicts_left:
            self.conflicts_left -= 1
            self.rv += 1
            self.node.metadata.resource_version = str(self.rv)
        if node.metadata.resource_version != self.node.metadata.resource_version:
            raise Conflict("stale")
        self.node.status.CopyFrom(node.status)
        return await self._stored()


def test_register_keeps_spec_and_heartbeat_renews_through_conflicts():
    async def scenario():
        store, clock = NodeStore(), FakeClock()
        agent = NodeAgent(client=store, identity=NodeIdentity("n1", "127.0.0.1", 10250), clock=clock)
        node = await agent.register()
        ready = {c.type: c for c in node.status.conditions}["Ready"]
        assert ready.status == "True" and ready.reason == "KubeletReady"
        first = ready.last_heartbeat_time.ToDatetime()

        clock.advance(10)
        store.conflicts_left = 2  # someone else writes twice meanwhile
        node = await agent.heartbeat_once()
        ready = {c.type: c for c in node.status.conditions}["Ready"]
        assert ready.last_heartbeat_time.ToDatetime() - first == timedelta(seconds=10)
        assert ready.last_transition_time.ToDatetime() == first  # no transition: still Ready
        assert [c.type for c in node.status.conditions] == ["Ready"]
        assert await agent.wait_for_pod_cidr() == "10.88.1.0/24"

        # A second agent of the same name takes the node over without losing its spec.
        again = await NodeAgent(client=store, identity=NodeIdentity("n1", "127.0.0.1", 10251), clock=clock).register()
        assert again.spec.pod_cidr == "10.88.1.0/24"
        assert again.status.daemon_endpoints.kubelet_endpoint.port == 10251
    asyncio.run(scenario())


def test_a_heartbeat_is_one_write_and_a_deleted_node_registers_again():
    async def scenario():
        store, clock = NodeStore(), FakeClock()
        agent = NodeAgent(client=store, identity=NodeIdentity("n1", "127.0.0.1", 10250), clock=clock)
        await agent.register()
        store.gets = store.status_writes = 0
        for _ in range(3):
            clock.advance(10)
            await agent.heartbeat_once()
        assert (store.gets, store.status_writes) == (0, 3)   # onto the node as last written

        store.node.spec.unschedulable = True   # someone cordons it: the next heartbeat conflicts, re-reads
        store.rv += 1
        store.node.metadata.resource_version = str(store.rv)
        clock.advance(10)
        node = await agent.heartbeat_once()
        assert node.spec.unschedulable and store.gets == 1
        ready = {c.type: c for c in node.status.conditions}["Ready"]
        assert ready.last_heartbeat_time.ToDatetime() == clock.now().replace(tzinfo=None)

        store.node = None   # deleted: registered again, with its status
        node = await agent.heartbeat_once()
        assert store.node is not None and node.metadata.name == "n1"
        assert [c.type for c in node.status.conditions] == ["Ready"]
    asyncio.run(scenario())


def test_a_heartbeat_does_not_wait_for_a_busy_default_thread_pool():
    """Pod work (network attaches, cgroups) fills the loop's default thread pool when many pods
    start at once; the heartbeat's own reads must not queue behind it."""
    import threading

    async def scenario():
        store, clock = NodeStore(), FakeClock()
        agent = NodeAgent(client=store, identity=NodeIdentity("n1", "127.0.0.1", 10250), clock=clock,
                          pressure=lambda: [], images=lambda: [])
        await agent.register()
        release = threading.Event()
        loop = asyncio.get_running_loop()
        busy = [loop.run_in_executor(None, release.wait) for _ in range(64)]   # every default thread taken
        try:
            clock.advance(10)
            node = await asyncio.wait_for(agent.heartbeat_once(), 5)
            ready = {c.type: c for c in node.status.conditions}["Ready"]
            assert ready.last_heartbeat_time.ToDatetime() == clock.now().replace(tzinfo=None)
        finally:
            release.set()
            await asyncio.gather(*busy)
    asyncio.run(scenario())


def test_restart_backoff_resets_after_ten_quiet_minutes():
    b = RestartBackoff()
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    key = ("uid", "c")
    assert b.remaining(key, finished_at=t0, now=t0) == 0  # first crash: restart now
    b.next(key, finished_at=t0)
    t1 = t0 + timedelta(seconds=1)
    assert b.remaining(key, finished_at=t1, now=t1) == 10
    assert b.remaining(key, finished_at=t1, now=t1 + timedelta(seconds=4)) == 6
    b.next(key, finished_at=t1)
    assert b.current(key) == 20
    late = t1 + timedelta(minutes=11)
    assert b.remaining(key, finished_at=late, now=late) == 0
    b.next(key, finished_at=late)
    assert b.current(key) == 10
    b.forget("uid")
    assert b.current(key) == 0


def test_ready_follows_the_runtime_health_and_changes_are_written_at_once():
    # A node whose runtime cannot start containers (its zygote is gone and
    # cannot be replaced) must not report Ready while pods pile up ContainerCreating.
    async def scenario():
        store, clock = NodeStore(), FakeClock()
        problem: list[str | None] = [None]

        async def health():
            return problem[0]
        agent = NodeAgent(client=store, identity=NodeIdentity("n1", "127.0.0.1", 10250), clock=clock,
                          period_seconds=3600, runtime_health=health, health_period_seconds=0.01)
        node = await agent.register()
        assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
        beat = asyncio.create_task(agent.heartbeat())
        try:
            async def ready_becomes(value: str):
                while True:
                    ready = {c.type: c for c in store.node.status.conditions}["Ready"]
                    if ready.status == value:
                        return ready
                    await asyncio.sleep(0.01)
            problem[0] = "container runtime is down: cannot replace the zygote: no way"
            ready = await asyncio.wait_for(ready_becomes("False"), 10)   # long before the 1 h heartbeat
            assert (ready.reason, ready.message) == ("KubeletNotReady", problem[0])
            problem[0] = None
            ready = await asyncio.wait_for(ready_becomes("True"), 10)
            assert ready.reason == "KubeletReady"
        finally:
            beat.cancel()
    asyncio.run(scenario())


def test_ready_is_false_naming_the_pod_watch_while_the_pod_informer_cannot_watch():
    """Issue 15: an agent whose pod informer keeps failing (past its bound) is
    not Ready, reason PodWatchFailing naming the informer and the error; Ready
    again once the watch delivers."""
    from skiff.client import Unavailable
    from skiff.controller import Informer
    from skiff.retry import Backoff

    class PodApi:
        down = True

        async def list(self, kind, namespace="", label_selector="", field_selector=""):
            if self.down:
                raise Unavailable("watch of pods refused: etcd unreachable")
            return [], "5"

        async def watch(self, kind, namespace="", label_selector="", field_selector="", resource_version="",
                    bookmarks=False):
            p = types_pb2.Pod()
            p.metadata.name, p.metadata.namespace, p.metadata.resource_version = "web", "default", "6"
            yield "ADDED", p, "6"
            await asyncio.Event().wait()

    async def scenario():
        store, clock, api = NodeStore(), FakeClock(), PodApi()
        informer = Informer(api, "Pod", field_selector="spec.nodeName=n1", backoff=Backoff(initial=0.01, maximum=0.02))
        agent = NodeAgent(client=store, identity=NodeIdentity("n1", "127.0.0.1", 10250), clock=clock,
                          period_seconds=3600, health_period_seconds=0.01,
                          watch_health=lambda: informer.problem(0.05))
        await agent.register()
        informer.start()
        beat = asyncio.create_task(agent.heartbeat())
        try:
            async def ready_becomes(value: str):
                while True:
                    ready = {c.type: c for c in store.node.status.conditions}["Ready"]
                    if ready.status == value:
                        return ready
                    await asyncio.sleep(0.01)
            ready = await asyncio.wait_for(ready_becomes("False"), 10)
            assert ready.reason == "PodWatchFailing"
            assert "cannot watch its pods" in ready.message and "spec.nodeName=n1" in ready.message
            assert "etcd unreachable" in ready.message
            api.down = False
            ready = await asyncio.wait_for(ready_becomes("True"), 10)
            assert ready.reason == "KubeletReady"
        finally:
            beat.cancel()
            await informer.stop()
    asyncio.run(scenario())
