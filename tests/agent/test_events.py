"""The agent's pod events: recorded off the reconcile path, repeats counted on one Event."""
from __future__ import annotations

import asyncio

from agent.events import EventRecorder
from proto.skiff.v1 import types_pb2
from skiff.client import NotFound


class EventStore:
    def __init__(self) -> None:
        self.events: dict[str, types_pb2.Event] = {}
        self.creates = self.updates = 0

    async def create(self, event):
        self.creates += 1
        self.events[event.metadata.name] = event
        return event

    async def update(self, event):
        if event.metadata.name not in self.events:
            raise NotFound(event.metadata.name)
        self.updates += 1
        self.events[event.metadata.name] = event
        return event


def test_repeated_event_bumps_the_count_of_one_event():
    async def scenario():
        store = EventStore()
        recorder = EventRecorder(client=store, node_name="node-1")
        pod = types_pb2.Pod()
        pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "web", "default", "u1"
        for _ in range(3):
            recorder.record(pod, type="Warning", reason="BackOff", message="Back-off restarting failed container")
            await recorder.flush()
        recorder.record(pod, type="Normal", reason="Started", message="Started container main")
        await recorder.flush()
        by_reason = {e.reason: e for e in store.events.values()}
        assert by_reason["BackOff"].count == 3 and by_reason["Started"].count == 1
        assert (store.creates, store.updates) == (2, 2)
        backoff = by_reason["BackOff"]
        assert backoff.involved_object.uid == "u1" and backoff.type == "Warning"
        assert backoff.source.component == "skiff-agent" and backoff.source.host == "node-1"
        # The event was removed meanwhile: the next repeat makes a new one instead of failing.
        store.events.clear()
        recorder.record(pod, type="Warning", reason="BackOff", message="Back-off restarting failed container")
        await recorder.flush()
        assert [e.count for e in store.events.values()] == [1]
    asyncio.run(scenario())
