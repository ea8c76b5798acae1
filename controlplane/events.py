"""Events: short records of what a component did to an object ("Scheduled",
"FailedScheduling"), stored as Event objects in the object's namespace so
`skiff describe` can show them. Recording is best effort: a failure to record
is logged, never raised into the caller's reconcile."""
from __future__ import annotations

import logging
import uuid

from google.protobuf.message import Message

from proto.skiff.v1 import types_pb2
from skiff.api import kinds, meta
from skiff.client import ApiClient, ApiError

log = logging.getLogger(__name__)


def build_event(obj: Message, *, type_: str, reason: str, message: str, component: str,
                now: float | None = None) -> types_pb2.Event:
    kind = kinds.kind_of(obj)
    ts = meta.timestamp(now)
    event = types_pb2.Event(api_version="v1", kind="Event", reason=reason, message=message, type=type_, count=1)
    # Cluster-scoped objects' events live in "default", as Kubernetes does it.
    event.metadata.namespace = obj.metadata.namespace or "default"
    event.metadata.name = f"{obj.metadata.name}.{uuid.uuid4().hex[:10]}"
    ref = event.involved_object
    ref.kind, ref.api_version, ref.name = kind.name, kind.api_version, obj.metadata.name
    ref.namespace, ref.uid = obj.metadata.namespace, obj.metadata.uid
    ref.resource_version = obj.metadata.resource_version
    event.first_timestamp.CopyFrom(ts)
    event.last_timestamp.CopyFrom(ts)
    event.source.component = component
    return event


class EventRecorder:
    def __init__(self, *, client: ApiClient, component: str) -> None:
        self.client = client
        self.component = component

    async def record(self, obj: Message, *, type_: str, reason: str, message: str) -> None:
        event = build_event(obj, type_=type_, reason=reason, message=message, component=self.component)
        try:
            await self.client.create(event)
        except ApiError as exc:
            log.info("could not record event %s for %s: %s", reason, meta.namespaced_name(obj), exc)
