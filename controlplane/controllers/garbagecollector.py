"""The garbage collector: dependents go with their owners (Kubernetes' GC).

An object names its owners in metadata.ownerReferences (kind, name, uid). When
an owner is deleted, what happens to its dependents is the delete's
propagation policy, which the registry leaves on the owner as a finalizer:

    Background (default)  the owner goes at once; each dependent whose owners
                          are all gone is then deleted here
    Foreground            the owner stays (deletionTimestamp, finalizer
                          `foregroundDeletion`) while its dependents are deleted,
                          and goes once none with blockOwnerDeletion=true is left
    Orphan                the owner stays (finalizer `orphan`) until every
                          dependent has lost its reference to it, then goes

The graph. One informer per kind in the registry (the process's shared ones);
each indexes its objects by owner uid (Lister.owned_by), so their union is
the graph owner uid → dependents, and an object's own references are the edges
the other way. A change of an object enqueues it (if it has owners or one of
our finalizers), the owners it names and, once it is being deleted or gone,
its dependents. `reconcile((kind, namespace, name))` looks at one object:

    gone or unowned                  nothing
    deleting, finalizer `orphan`     drop the reference to it from each dependent,
                                     then the finalizer
    deleting, `foregroundDeletion`   enqueue its dependents (they see a waiting
                                     owner and go); drop the finalizer once no
                                     blocking dependent is left
    has owners                       attempt_to_delete, Kubernetes' attemptToDeleteItem:
      an owner still there (solid)   keep the object; drop references to owners
                                     that are gone or waiting for it
      an owner waiting for it        delete it; Foreground if it has dependents
                                     of its own, so the wait reaches down the chain
      every owner gone (dangling)    delete it (its own finalizers choose the policy)

The uid check. The cache may be behind (an owner created a moment before its
dependent, an informer re-listing after a broken watch), so an owner missing
from the cache is looked up through the API and counts as gone only if the API
says NotFound or holds an object of another uid under that name (Kubernetes'
isDangling). A dependent seen for the first time also gets `grace_seconds`
before its first verdict of a gone owner, for an owner still on its way.

Cycles. An owner never waits for itself. A dependent whose owner waits for it
and which has a dependent itself waiting for its own dependents (a cycle of
foreground deletions) first turns its references to the waiting owners
non-blocking (Kubernetes' unblockOwnerReferences), so the cycle unwinds instead
of each member waiting for the next. Nothing is deleted twice in a loop: an
object being deleted is never deleted again, and failed calls retry with the
work queue's per-key back-off.
"""
from __future__ import annotations

import enum
import logging
import time
from typing import Callable, Hashable, Iterator

from google.protobuf.message import Message

from skiff.api import kinds, meta
from skiff.api.owners import FOREGROUND_DELETION as FOREGROUND
from skiff.api.owners import ORPHAN
from skiff.client import ApiClient, Conflict, NotFound
from skiff.controller import Controller, EventHandler, Informer, SharedInformerFactory

log = logging.getLogger(__name__)

GcKey = tuple[str, str, str]   # (kind, namespace, name)
_ATTEMPTS = 5                  # read-modify-write rounds before a Conflict goes to the back-off


class Owner(enum.Enum):
    SOLID = "solid"          # exists with the referenced uid, not waiting for its dependents
    WAITING = "waiting"      # being deleted with foregroundDeletion: waits for its dependents
    DANGLING = "dangling"    # gone, or the name now holds another object (checked through the API)


def deleting(obj: Message) -> bool:
    return obj.metadata.HasField("deletion_timestamp")


def deleting_dependents(obj: Message) -> bool:
    return deleting(obj) and FOREGROUND in obj.metadata.finalizers


# Kinds the graph leaves out, as Kubernetes' DefaultIgnoredResources: Events are written by the
# thousand (four or five a pod), own nothing and are owned by nothing, and watching them kept
# every one decoded twice (the informer and the watch cache): 125 MiB of the control plane's
# 539 at 10 000 pods. An Event dies by its TTL, not by an owner.
IGNORED_KINDS = frozenset({"Event"})


class GarbageCollector(Controller):
    name = "garbage-collector"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory, grace_seconds: float = 5.0,
                 workers: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(metrics=factory.metrics, workers=workers)
        self.client = client
        self.grace_seconds = grace_seconds
        self.clock = clock
        self._first_seen: dict[GcKey, float] = {}
        self.caches: dict[str, Informer] = {}
        for kind in kinds.all_kinds():
            if kind.name in IGNORED_KINDS:
                continue
            informer = self.uses(factory.informer(kind.name))
            self.caches[kind.name] = informer
            informer.add_event_handler(EventHandler(
                on_add=lambda key, obj, k=kind.name: self._observed(k, obj),
                on_update=lambda key, old, new, k=kind.name: self._observed(k, new, old),
                on_delete=lambda key, old, k=kind.name: self._gone(k, old)))

    # ------------------------------------------------------------ the graph

    def dependents(self, owner: Message) -> Iterator[tuple[str, Message]]:
        """(kind, object) of everything that references `owner` by uid, itself excluded."""
        uid = owner.metadata.uid
        for kind_name, informer in self.caches.items():
            for dep in informer.lister.owned_by(uid):
                if dep.metadata.uid != uid:
                    yield kind_name, dep

    def owner_keys(self, obj: Message) -> Iterator[GcKey]:
        for ref in obj.metadata.owner_references:
            try:
                owner_kind = kinds.kind_named(ref.kind)
            except kinds.UnknownKind:
                continue
            yield owner_kind.name, obj.metadata.namespace if owner_kind.namespaced else "", ref.name

    def _observed(self, kind_name: str, obj: Message, old: Message | None = None) -> None:
        key = (kind_name, obj.metadata.namespace, obj.metadata.name)
        if obj.metadata.owner_references or _our_finalizers(obj):
            self._first_seen.setdefault(key, self.clock())
            self.enqueue(key)
        for was in (old, obj):
            if was is not None:
                for owner in self.owner_keys(was):
                    self.enqueue(owner)   # an owner waiting for this one may be free now
        if deleting(obj):
            self._enqueue_dependents(obj)
        if old is not None and old.metadata.uid != obj.metadata.uid:
            self._enqueue_dependents(old)  # replaced under the same name: the old one's dependents lost it

    def _gone(self, kind_name: str, old: Message) -> None:
        self._first_seen.pop((kind_name, old.metadata.namespace, old.metadata.name), None)
        for owner in self.owner_keys(old):
            self.enqueue(owner)
        self._enqueue_dependents(old)

    def _enqueue_dependents(self, owner: Message) -> None:
        for kind_name, dep in self.dependents(owner):
            self.enqueue((kind_name, dep.metadata.namespace, dep.metadata.name))

    def describe_key(self, key: Hashable) -> str:
        kind_name, namespace, name = key  # type: ignore[misc]
        return f"{kind_name.lower()} {namespace + '/' if namespace else ''}{name}"

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: GcKey) -> float | None:
        kind_name, namespace, name = key
        cache = self.caches.get(kind_name)
        obj = cache.get((namespace, name)) if cache is not None else None
        if obj is None:
            return None
        if deleting(obj):
            if ORPHAN in obj.metadata.finalizers:
                await self.orphan_dependents(kind_name, obj)
            elif FOREGROUND in obj.metadata.finalizers:
                await self.delete_dependents(kind_name, obj)
            return None
        if not obj.metadata.owner_references:
            return None
        return await self.attempt_to_delete(kind_name, obj)

    async def attempt_to_delete(self, kind_name: str, obj: Message) -> float | None:
        """Delete obj if no owner holds it any more; returns seconds to look again (grace)."""
        states: dict[Owner, list] = {state: [] for state in Owner}
        for ref in obj.metadata.owner_references:
            states[await self.owner_state(obj, ref)].append(ref)
        solid, waiting, dangling = states[Owner.SOLID], states[Owner.WAITING], states[Owner.DANGLING]
        if dangling:
            key = (kind_name, obj.metadata.namespace, obj.metadata.name)
            fresh_for = self.grace_seconds - (self.clock() - self._first_seen.setdefault(key, self.clock()))
            if fresh_for > 0:
                return fresh_for   # its owner may still be on its way
        if solid:
            if dangling or waiting:   # kept by a live owner: only the references that no longer hold it go
                let_go = {ref.uid for ref in dangling + waiting}
                await self._change(kind_name, obj, lambda o: _drop_references(o, let_go))
            return None
        if waiting and any(True for _ in self.dependents(obj)):
            if any(deleting_dependents(dep) for _, dep in self.dependents(obj)):
                blocked_by = {ref.uid for ref in waiting}
                await self._change(kind_name, obj, lambda o: _unblock(o, blocked_by))
            await self._delete(kind_name, obj, "Foreground")
            return None
        await self._delete(kind_name, obj, _policy_of(obj))
        return None

    async def owner_state(self, obj: Message, ref: Message) -> Owner:
        try:
            owner_kind = kinds.kind_named(ref.kind)
        except kinds.UnknownKind:   # validation refuses these; an old object's owner cannot be checked: keep it
            return Owner.SOLID
        if owner_kind.namespaced and not obj.metadata.namespace:
            return Owner.DANGLING   # a cluster-scoped object cannot be owned by a namespaced one
        namespace = obj.metadata.namespace if owner_kind.namespaced else ""
        owner = self.caches[owner_kind.name].get((namespace, ref.name))
        if owner is None or owner.metadata.uid != ref.uid:
            # The cache may be behind: only the API may say the owner is gone.
            try:
                owner = await self.client.get(owner_kind.name, ref.name, namespace)
            except NotFound:
                return Owner.DANGLING
            if owner.metadata.uid != ref.uid:
                return Owner.DANGLING
        return Owner.WAITING if deleting_dependents(owner) else Owner.SOLID

    async def orphan_dependents(self, kind_name: str, owner: Message) -> None:
        uid = owner.metadata.uid
        for dep_kind, dep in list(self.dependents(owner)):
            await self._change(dep_kind, dep, lambda o: _drop_references(o, {uid}))
        await self._change(kind_name, owner, lambda o: _drop_finalizer(o, ORPHAN))
        log.info("%s %s: dependents orphaned", kind_name, _name(owner))

    async def delete_dependents(self, kind_name: str, owner: Message) -> None:
        uid = owner.metadata.uid
        blocking = 0
        for dep_kind, dep in self.dependents(owner):
            if any(ref.uid == uid and ref.block_owner_deletion for ref in dep.metadata.owner_references):
                blocking += 1
            if not deleting(dep):
                self.enqueue((dep_kind, dep.metadata.namespace, dep.metadata.name))
        if blocking:
            return   # each dependent's deletion enqueues this owner again
        await self._change(kind_name, owner, lambda o: _drop_finalizer(o, FOREGROUND))
        log.info("%s %s: dependents deleted (foreground)", kind_name, _name(owner))

    # ------------------------------------------------------------ writes

    async def _delete(self, kind_name: str, obj: Message, policy: str) -> None:
        log.info("deleting %s %s (%s): no owner holds it", kind_name, _name(obj), policy)
        try:
            await self.client.delete(kind_name, obj.metadata.name, obj.metadata.namespace,
                                     precondition_uid=obj.metadata.uid, propagation_policy=policy)
        except NotFound:
            pass

    async def _change(self, kind_name: str, obj: Message, change: Callable[[Message], bool]) -> None:
        """Apply `change` (True: it changed something) to the current `obj` (same
        uid) with CAS, reading again on a Conflict."""
        for _ in range(_ATTEMPTS):
            try:
                current = await self.client.get(kind_name, obj.metadata.name, obj.metadata.namespace)
            except NotFound:
                return
            if current.metadata.uid != obj.metadata.uid:
                return
            if not change(current):
                return
            try:
                await self.client.update(current)
                return
            except NotFound:
                return
            except Conflict:
                continue
        raise Conflict(f"{kind_name} {_name(obj)} kept changing")


def _our_finalizers(obj: Message) -> bool:
    return ORPHAN in obj.metadata.finalizers or FOREGROUND in obj.metadata.finalizers


def _policy_of(obj: Message) -> str:
    """What the dependent's own finalizers ask for (it may have dependents too)."""
    if ORPHAN in obj.metadata.finalizers:
        return "Orphan"
    if FOREGROUND in obj.metadata.finalizers:
        return "Foreground"
    return "Background"


def _drop_references(obj: Message, uids: set[str]) -> bool:
    kept = [ref for ref in obj.metadata.owner_references if ref.uid not in uids]
    if len(kept) == len(obj.metadata.owner_references):
        return False
    kept = [meta.copy(ref) for ref in kept]
    del obj.metadata.owner_references[:]
    obj.metadata.owner_references.extend(kept)
    return True


def _unblock(obj: Message, uids: set[str]) -> bool:
    changed = False
    for ref in obj.metadata.owner_references:
        if ref.uid in uids and ref.block_owner_deletion:
            ref.block_owner_deletion = False
            changed = True
    return changed


def _drop_finalizer(obj: Message, finalizer: str) -> bool:
    if finalizer not in obj.metadata.finalizers:
        return False
    obj.metadata.finalizers.remove(finalizer)
    return True


def _name(obj: Message) -> str:
    m = obj.metadata
    return f"{m.namespace}/{m.name}" if m.namespace else m.name
