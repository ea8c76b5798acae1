"""An in-memory stand-in for the control plane, for deterministic pod worker tests.

Implements the part of `skiff.client.ApiClient` the pod workers call (get,
update_status with compare-and-swap, delete) and the informer's cache
interface (get(key), list()). The real control plane is exercised by
tests/agent/test_agent_integration.py.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from proto.skiff.v1 import types_pb2
from skiff.client import Conflict, NotFound


class FakeApi:
    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], types_pb2.Pod] = {}
        self.revision = 0
        self.status_writes = 0
        self.deleted: list[tuple[str, str]] = []

    def _bump(self, pod: types_pb2.Pod) -> types_pb2.Pod:
        self.revision += 1
        pod.metadata.resource_version = str(self.revision)
        return pod

    def add_pod(self, name: str, *, namespace: str = "default", node: str = "node-1",
                containers: list[dict] | None = None, restart_policy: str = "", grace: int | None = None,
                init: list[dict] = ()) -> types_pb2.Pod:
        pod = types_pb2.Pod(api_version="v1", kind="Pod")
        pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = name, namespace, str(uuid.uuid4())
        pod.metadata.creation_timestamp.FromDatetime(datetime(2026, 1, 1, tzinfo=timezone.utc))
        pod.spec.node_name = node
        pod.spec.restart_policy = restart_policy
        if grace is not None:
            pod.spec.termination_grace_period_seconds = grace
        for c in [*init, *(containers or [{"name": "main", "image": "busybox"}])]:
            where = pod.spec.init_containers if c in init else pod.spec.containers
            spec = where.add(name=c["name"], image=c.get("image", "busybox"))
            spec.command.extend(c.get("command", ["sh", "-c", "true"]))
            if "image_pull_policy" in c:
                spec.image_pull_policy = c["image_pull_policy"]
            for port in c.get("host_ports", ()):
                spec.ports.add(container_port=port, host_port=port)
        self.pods[(namespace, name)] = self._bump(pod)
        return self.get((namespace, name))

    # ---- informer cache interface
    def get(self, key):
        pod = self.pods.get(key)
        return _copy(pod) if pod is not None else None

    def list(self):
        return [_copy(p) for p in self.pods.values()]

    def pod(self, name: str, namespace: str = "default") -> types_pb2.Pod:
        return _copy(self.pods[(namespace, name)])

    def mark_deleted(self, name: str, namespace: str = "default", grace: int = 30) -> None:
        pod = self.pods[(namespace, name)]
        pod.metadata.deletion_timestamp.FromDatetime(datetime(2026, 1, 1, tzinfo=timezone.utc))
        pod.metadata.deletion_grace_period_seconds = grace
        self._bump(pod)


class FakeClient:
    """The ApiClient methods the pod workers use, over a FakeApi."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api

    async def get(self, kind: str, name: str, namespace: str = "default", *,
                  resource_version: str = "") -> types_pb2.Pod:
        pod = self.api.pods.get((namespace, name))
        if pod is None:
            raise NotFound(f"pods {namespace}/{name} not found")
        return _copy(pod)

    async def update_status(self, obj: types_pb2.Pod) -> types_pb2.Pod:
        key = (obj.metadata.namespace, obj.metadata.name)
        stored = self.api.pods.get(key)
        if stored is None:
            raise NotFound(f"pods {key} not found")
        if obj.metadata.resource_version and obj.metadata.resource_version != stored.metadata.resource_version:
            raise Conflict(f"pods {key}: resourceVersion {obj.metadata.resource_version} is stale")
        stored.status.CopyFrom(obj.status)
        self.api.status_writes += 1
        return _copy(self.api._bump(stored))

    async def delete(self, kind: str, name: str, namespace: str = "default", grace_period_seconds=None, *,
                     precondition_uid: str = "") -> types_pb2.Pod:
        pod = self.api.pods.get((namespace, name))
        if pod is None or (precondition_uid and pod.metadata.uid != precondition_uid):
            raise NotFound(f"pods {namespace}/{name} not found")
        assert grace_period_seconds == 0
        del self.api.pods[(namespace, name)]
        self.api.deleted.append((namespace, name))
        return _copy(pod)


def _copy(pod: types_pb2.Pod) -> types_pb2.Pod:
    out = types_pb2.Pod()
    out.CopyFrom(pod)
    return out
