"""Small helpers over object metadata and conditions, shared by the API
server, the scheduler, the controllers and the agent.

Conditions are lists of messages with a `type`; `set_condition` keeps
Kubernetes' rule that lastTransitionTime moves only when the status changes.
"""
from __future__ import annotations

import time
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(seconds: float | None = None) -> Timestamp:
    """A Timestamp for `seconds` since the epoch (default: now)."""
    ts = Timestamp()
    ts.FromNanoseconds(int((time.time() if seconds is None else seconds) * 1e9))
    return ts


def seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def copy(obj: Message) -> Message:
    out = type(obj)()
    out.CopyFrom(obj)
    return out


def namespaced_name(obj: Message) -> str:
    """"namespace/name" (just "name" for cluster-scoped objects), as logs show it."""
    ns = obj.metadata.namespace
    return f"{ns}/{obj.metadata.name}" if ns else obj.metadata.name


def get_condition(conditions: Any, type_: str) -> Message | None:
    for condition in conditions:
        if condition.type == type_:
            return condition
    return None


def remove_condition(conditions: Any, type_: str) -> bool:
    """Drop the condition `type_` from a repeated condition field; whether there was one."""
    kept = [c for c in conditions if c.type != type_]
    if len(kept) == len(conditions):
        return False
    del conditions[:]
    conditions.extend(kept)
    return True


def set_condition(conditions: Any, *, type_: str, status: str, reason: str = "", message: str = "",
                  now: Timestamp | None = None, heartbeat: bool = False) -> bool:
    """Add or update the condition `type_` in a repeated condition field (pod
    or node). Returns whether anything but a heartbeat changed. With
    heartbeat=True, lastHeartbeatTime (node conditions) is set to `now`."""
    now = now or timestamp()
    condition = get_condition(conditions, type_)
    if condition is None:
        condition = conditions.add(type=type_)
    changed = (condition.status, condition.reason, condition.message) != (status, reason, message)
    if condition.status != status or not condition.HasField("last_transition_time"):
        condition.last_transition_time.CopyFrom(now)
    condition.status, condition.reason, condition.message = status, reason, message
    if heartbeat:
        condition.last_heartbeat_time.CopyFrom(now)
    return changed
