"""Event (v1): what happened to an object, for `describe` and `get events`.

Events expire (storage TTL, Kubernetes' --event-ttl: 1 h by default, the
control plane's --event-ttl overrides it); `get events` lists them oldest
first so the latest is nearest the prompt.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from proto.skiff.v1 import types_pb2
from skiff.api import humanize
from skiff.api.kinds.strategy import FieldGetter, Kind, Strategy, getter

DEFAULT_TTL_SECONDS = 3600.0


class EventStrategy(Strategy):
    ttl_seconds = DEFAULT_TTL_SECONDS

    def sort_key(self, obj: Message) -> Any:
        return event_time_key(obj)

    @property
    def field_selectors(self) -> dict[str, FieldGetter]:
        # Kubernetes' event fields: kubectl describe finds an object's events by these.
        fields = {f"involvedObject.{json}": getter("involved_object", proto) for json, proto in (
            ("kind", "kind"), ("namespace", "namespace"), ("name", "name"), ("uid", "uid"),
            ("apiVersion", "api_version"), ("resourceVersion", "resource_version"))}
        return {**super().field_selectors, **fields, "reason": getter("reason"), "type": getter("type"),
                "source": getter("source", "component")}

    def columns(self, *, wide: bool) -> list[str]:
        return ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        return [humanize.age(_event_time(obj), now=now), obj.type, obj.reason,
                f"{obj.involved_object.kind.lower()}/{obj.involved_object.name}", obj.message]


KIND = Kind("Event", "v1", "events", "event", types_pb2.Event, True, ("event", "ev"), strategy=EventStrategy())


def event_time_key(event: Message) -> tuple[int, int]:
    """Sort key: when the event last happened."""
    ts = _event_time(event)
    return (ts.seconds, ts.nanos) if ts is not None else (0, 0)


def _event_time(event: Message) -> Any:
    for ts in (event.last_timestamp, event.first_timestamp, event.metadata.creation_timestamp):
        if ts.seconds or ts.nanos:
            return ts
    return None
