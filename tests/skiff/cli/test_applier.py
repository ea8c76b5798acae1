"""skiff.cli._applier: apply's GET → merge → UPDATE loop, with a stub client
(a Conflict means: read again and merge again, never overwrite blindly)."""
from __future__ import annotations

import asyncio
import json

from proto.skiff.v1 import types_pb2
from skiff.api import merge
from skiff.client import Conflict, NotFound
from skiff.cli._applier import apply_one


def pod(labels: dict[str, str], *, rv: str = "", annotations: dict[str, str] | None = None) -> types_pb2.Pod:
    p = types_pb2.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.resource_version = "web", "default", rv
    p.metadata.labels.update(labels)
    p.metadata.annotations.update(annotations or {})
    p.spec.containers.add(name="main", image="busybox")
    return p


class StubClient:
    """Serves a sequence of live objects; the first update is a Conflict."""

    def __init__(self, lives):
        self.lives, self.updates, self.conflicts = list(lives), [], 1

    async def get(self, kind, name, namespace="default"):
        if not self.lives:
            raise NotFound(f'pods "{name}" not found')
        return self.lives.pop(0) if len(self.lives) > 1 else self.lives[0]

    async def update(self, obj):
        self.updates.append(obj)
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict("stale")
        return obj


def test_conflict_rereads_and_merges_onto_the_newer_object():
    applied = json.dumps({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": "web", "labels": {"app": "web", "tier": "x"}}}) + "\n"
    first = pod({"app": "web", "tier": "x"}, rv="5", annotations={merge.LAST_APPLIED: applied})
    # Between our read and our write, someone added a label.
    second = pod({"app": "web", "tier": "x", "owner": "ops"}, rv="6", annotations={merge.LAST_APPLIED: applied})
    client = StubClient([first, second])
    manifest = pod({"app": "web"})
    manifest.metadata.namespace = ""
    outcome = asyncio.run(apply_one(client, manifest))
    assert outcome.result == "configured"
    assert [u.metadata.resource_version for u in client.updates] == ["5", "6"]
    assert dict(client.updates[-1].metadata.labels) == {"app": "web", "owner": "ops"}   # tier gone, owner kept


def test_absent_object_is_created_with_the_annotation():
    created = []

    class Empty(StubClient):
        async def create(self, obj):
            created.append(obj)
            return obj

    outcome = asyncio.run(apply_one(Empty([]), pod({"app": "web"})))
    assert outcome.result == "created"
    assert json.loads(created[0].metadata.annotations[merge.LAST_APPLIED])["metadata"]["labels"] == {"app": "web"}
