"""Events about pods, as kubelet records them (Pulled, Created, Started, BackOff,
Killing, Failed), for `skiff describe pod`.

Best effort and off the reconcile path: `record()` returns at once and the
write happens in a task; a failed write is logged, never retried, and never
fails a reconcile. A repeat of the same (pod, reason, message) bumps the
existing Event's count and lastTimestamp instead of creating another, as
Kubernetes' event correlator does, so a crash loop makes one BackOff event.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from agent.clock import Clock, SystemClock
from agent.status import timestamp
from proto.skiff.v1 import types_pb2
from skiff.client import ApiError

log = logging.getLogger(__name__)
MAX_REMEMBERED = 4096


class EventRecorder:
    def __init__(self, *, client: Any, node_name: str, clock: Clock | None = None) -> None:
        self.client = client
        self.node_name = node_name
        self.clock = clock or SystemClock()
        # (pod uid, reason, message) -> what a repeat needs of the Event written, as client-go's
        # correlator keeps it: (name, resourceVersion, count, firstTimestamp), not the whole Event
        self._seen: dict[tuple[str, str, str], tuple[str, str, int, Timestamp]] = {}
        self._tasks: set[asyncio.Task] = set()

    def record(self, pod: types_pb2.Pod, *, type: str, reason: str, message: str) -> None:
        """Record an event about pod (type "Normal" or "Warning") in the background."""
        try:
            task = asyncio.get_running_loop().create_task(self._write(pod, type, reason, message))
        except RuntimeError:  # no loop: nothing to record with
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Wait for the writes under way (tests; a clean shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _write(self, pod: types_pb2.Pod, type_: str, reason: str, message: str) -> None:
        key = (pod.metadata.uid, reason, message)
        now = timestamp(self.clock.now())
        try:
            seen = self._seen.get(key)
            if seen is not None:
                name, resource_version, count, first = seen
                event = self._event(pod, type_, reason, message, name=name, count=count + 1, first=first, last=now)
                event.metadata.resource_version = resource_version
                try:
                    self._seen[key] = _remembered(await self.client.update(event))
                    return
                except ApiError:
                    self._seen.pop(key, None)  # gone or changed: start a new one
            event = self._event(pod, type_, reason, message, name=f"{pod.metadata.name}.{secrets.token_hex(8)}",
                                count=1, first=now, last=now)
            if len(self._seen) >= MAX_REMEMBERED:
                self._seen.clear()
            self._seen[key] = _remembered(await self.client.create(event))
        except ApiError as exc:
            log.debug("event %s for pod %s/%s not recorded: %s", reason, pod.metadata.namespace,
                      pod.metadata.name, exc)
        except Exception:
            log.exception("event %s for pod %s/%s not recorded", reason, pod.metadata.namespace, pod.metadata.name)

    def _event(self, pod: types_pb2.Pod, type_: str, reason: str, message: str, *, name: str, count: int,
               first: Timestamp, last: Timestamp) -> types_pb2.Event:
        event = types_pb2.Event(api_version="v1", kind="Event", reason=reason, message=message, type=type_,
                                count=count, first_timestamp=first, last_timestamp=last)
        event.metadata.name, event.metadata.namespace = name, pod.metadata.namespace
        event.involved_object.CopyFrom(types_pb2.ObjectReference(
            kind="Pod", namespace=pod.metadata.namespace, name=pod.metadata.name, uid=pod.metadata.uid,
            api_version="v1"))
        event.source.component, event.source.host = "skiff-agent", self.node_name
        return event

    def forget(self, pod_uid: str) -> None:
        for key in [k for k in self._seen if k[0] == pod_uid]:
            del self._seen[key]


def _remembered(event: types_pb2.Event) -> tuple[str, str, int, Timestamp]:
    first = Timestamp()
    first.CopyFrom(event.first_timestamp)
    return event.metadata.name, event.metadata.resource_version, event.count, first
