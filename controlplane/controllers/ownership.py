"""Controller references, Kubernetes' `ControllerRefManager`: which objects a
controller may act on.

An object has at most one controller (the ownerReference with
controller=true). A controller claims the objects its selector matches:

    controlled by it, selector matches       ─► its own
    controlled by it, selector stops matching ─► released (its reference removed)
    no controller, selector matches           ─► adopted (its reference added),
                                                 after asking the API that the
                                                 controller still exists
    controlled by another                     ─► never touched

So two controllers with overlapping selectors never fight: whoever adopts
first keeps the object.
"""
from __future__ import annotations

import logging
from typing import Callable, Mapping, Sequence

from google.protobuf.message import Message

from proto.skiff.v1 import types_pb2
from skiff.api import kinds, meta
from skiff.client import ApiClient, NotFound
from skiff.controller import Key, key_of

log = logging.getLogger(__name__)


def controller_ref(obj: Message) -> types_pb2.OwnerReference | None:
    for ref in obj.metadata.owner_references:
        if ref.controller:
            return ref
    return None


class OwnedPodEvents:
    """The pod event handlers of a controller that owns pods through a
    controller reference (Job, ReplicaSet, DaemonSet): the owner's key, checked
    by uid so a pod of a deleted owner never wakes a new one of the same name,
    and `expectations` told of the adds and deletions the informer sees.

    The controller sets `owner_kind`, `owners` (the owners' informer) and
    `expectations`, and registers these handlers on its pod informer."""

    owner_kind: str

    def _owner_key(self, pod: Message) -> Key | None:
        ref = controller_ref(pod)
        if ref is None or ref.kind != self.owner_kind:
            return None
        owner = self.owners.get((pod.metadata.namespace, ref.name))
        return key_of(owner) if owner is not None and owner.metadata.uid == ref.uid else None

    def _updated_pod_owner(self, old: Message, new: Message) -> Key | None:
        return self._owner_key(new)

    def _pod_added(self, key: Key, pod: Message) -> None:
        if (owner := self._owner_key(pod)) is not None:
            self.expectations.lower_adds(owner)
            self.enqueue(owner)

    def _pod_updated(self, key: Key, old: Message, new: Message) -> None:
        if (owner := self._updated_pod_owner(old, new)) is not None:
            if new.metadata.HasField("deletion_timestamp") and not old.metadata.HasField("deletion_timestamp"):
                self.expectations.deletion_seen(owner, new.metadata.uid)
            self.enqueue(owner)

    def _pod_deleted(self, key: Key, pod: Message) -> None:
        if (owner := self._owner_key(pod)) is not None:
            self.expectations.deletion_seen(owner, pod.metadata.uid)
            self.enqueue(owner)


def owner_reference(owner: Message) -> types_pb2.OwnerReference:
    """The reference a controller puts on what it makes or adopts, as
    Kubernetes': controller=true, blockOwnerDeletion=true (once the API has it)."""
    kind = kinds.kind_of(owner)
    ref = types_pb2.OwnerReference(api_version=kind.api_version, kind=kind.name, name=owner.metadata.name,
                                   uid=owner.metadata.uid, controller=True)
    if "block_owner_deletion" in types_pb2.OwnerReference.DESCRIPTOR.fields_by_name:
        ref.block_owner_deletion = True
    return ref


async def claim(client: ApiClient, owner: Message, candidates: Sequence[Message],
                matches: Callable[[Mapping[str, str]], bool]) -> list[Message]:
    """The candidates that are `owner`'s, adopting and releasing on the way."""
    owner_kind = kinds.kind_of(owner).name
    deleting = owner.metadata.HasField("deletion_timestamp")
    claimed: list[Message] = []
    can_adopt: bool | None = None
    for obj in candidates:
        ref = controller_ref(obj)
        fits = matches(obj.metadata.labels)
        if ref is not None:
            if ref.uid != owner.metadata.uid:
                continue
            if fits:
                claimed.append(obj)
            elif not deleting:
                await _release(client, owner, obj)
            continue
        if deleting or not fits or obj.metadata.HasField("deletion_timestamp"):
            continue
        if can_adopt is None:
            can_adopt = await _owner_still_there(client, owner, owner_kind)
        if can_adopt and (adopted := await _adopt(client, owner, obj)) is not None:
            claimed.append(adopted)
    return claimed


async def _owner_still_there(client: ApiClient, owner: Message, kind: str) -> bool:
    """Asks the API, not the cache: an owner deleted (or replaced by another
    of the same name) must not take objects."""
    try:
        fresh = await client.get(kind, owner.metadata.name, owner.metadata.namespace)
    except NotFound:
        return False
    return fresh.metadata.uid == owner.metadata.uid and not fresh.metadata.HasField("deletion_timestamp")


async def _adopt(client: ApiClient, owner: Message, obj: Message) -> Message | None:
    updated = meta.copy(obj)
    updated.metadata.owner_references.append(owner_reference(owner))
    try:
        result = await client.update(updated)
    except NotFound:
        return None
    log.info("%s %s adopted %s %s", kinds.kind_of(owner).name, meta.namespaced_name(owner),
             kinds.kind_of(obj).name, obj.metadata.name)
    return result


async def _release(client: ApiClient, owner: Message, obj: Message) -> None:
    updated = meta.copy(obj)
    kept = [r for r in updated.metadata.owner_references if r.uid != owner.metadata.uid]
    del updated.metadata.owner_references[:]
    updated.metadata.owner_references.extend(kept)
    try:
        await client.update(updated)
    except NotFound:
        return
    log.info("%s %s released %s %s (its labels no longer match)", kinds.kind_of(owner).name,
             meta.namespaced_name(owner), kinds.kind_of(obj).name, obj.metadata.name)
