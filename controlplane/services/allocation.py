"""A range's allocations persisted in the store, changed only with
compare-and-swap (Kubernetes' RangeAllocation kept in etcd).

The bitmap lives in one RangeAllocation object (proto/skiff/v1/internal.proto:
`range`, and the bitmap as `data`), a kind the store keeps but no API serves
(`kinds.register_unserved`): no verb, `-A` or garbage collector reaches it.
Any number of API server tasks - or processes - allocating at once serialise
on its resourceVersion: each reads, takes a free offset, and writes at the
revision it read; a concurrent writer makes the write a Conflict and the
loser reads again. No value is ever handed out twice.

A value taken for an object that then failed to be stored is given back by
the caller; one lost to a crash between the two is found by `repair`
(a value in the bitmap that no object holds, seen so twice in a row, is
freed; a value an object holds but the bitmap lacks is marked at once).

A bitmap found missing, or kept for another range, starts from the values the
stored objects hold (`held`), never from empty. Clusters from before kept the
bitmap in a user-visible ConfigMap in kube-system of the same name: a missing
RangeAllocation starts from that ConfigMap's bitmap (for the same range), which
is deleted once the RangeAllocation is written (decision 24).
"""
from __future__ import annotations

import random
from typing import Awaitable, Callable, Iterable, TypeVar

from google.protobuf.message import Message

from controlplane.store.interface import AlreadyExists, Conflict, NotFound
from controlplane.services.ranges import Bitmap, Range, Value
from proto.skiff.v1 import internal_pb2
from skiff.api import kinds
from skiff.api.kinds.strategy import Kind

RANGE_ALLOCATION = kinds.register_unserved(Kind("RangeAllocation", "v1", "rangeallocations", "",
                                                internal_pb2.RangeAllocation, namespaced=False))
LEGACY_NAMESPACE = "kube-system"   # where clusters from before kept the bitmap, as a ConfigMap
_ATTEMPTS = 100  # concurrent allocations only mean: read and try again
T = TypeVar("T")


class RangeAllocator:
    def __init__(self, *, store, name: str, range_: Range,
                 held: Callable[[], Awaitable[Iterable[Value]]] | None = None) -> None:
        self.store = store
        self.name = name            # the RangeAllocation's name
        self.range = range_
        self.held = held            # the values stored objects hold: the start of a missing bitmap
        self._suspects: set[int] = set()

    # ------------------------------------------------------------ the operations

    async def allocate(self, value: Value, *, dry_run: bool = False) -> Value:
        """Take `value`; NotInRange or AlreadyAllocated."""
        offset = self.range.offset(value)
        if offset is None:
            raise self.range.not_in_range(value)

        def take(bitmap: Bitmap) -> Value:
            if bitmap.has(offset):
                raise self.range.already(value)
            bitmap.set(offset)
            return value
        return await self._change(take, dry_run=dry_run)

    async def allocate_next(self, *, dry_run: bool = False) -> Value:
        """Take a free value (from a random place, so a value just given back is not handed out at once); RangeFull."""
        start = random.randrange(self.range.size)

        def take(bitmap: Bitmap) -> Value:
            offset = bitmap.first_free(start)
            if offset is None:
                raise self.range.full()
            bitmap.set(offset)
            return self.range.value(offset)
        return await self._change(take, dry_run=dry_run)

    async def release(self, values: Iterable[Value]) -> None:
        offsets = [o for o in (self.range.offset(v) for v in values) if o is not None]
        if not offsets:
            return

        def give_back(bitmap: Bitmap) -> None:
            for offset in offsets:
                bitmap.clear(offset)
        await self._change(give_back)

    async def allocated(self) -> set[Value]:
        bitmap, _ = await self._read()
        return {self.range.value(o) for o in bitmap.offsets()}

    async def repair(self, held: Iterable[Value]) -> tuple[list[Value], list[Value]]:
        """Make the bitmap agree with the values objects hold: mark the missing at
        once, free a leaked one only when the previous repair saw it leaked too
        (an allocation may be on its way to being stored). Returns (marked, freed)."""
        wanted = {o for o in (self.range.offset(v) for v in held) if o is not None}

        def fix(bitmap: Bitmap) -> tuple[list[Value], list[Value]]:
            present = bitmap.offsets()
            missing, leaked = wanted - present, present - wanted
            freed = leaked & self._suspects
            for offset in missing:
                bitmap.set(offset)
            for offset in freed:
                bitmap.clear(offset)
            self._suspects = leaked - freed
            return [self.range.value(o) for o in sorted(missing)], [self.range.value(o) for o in sorted(freed)]
        return await self._change(fix)

    # ------------------------------------------------------------ the store

    async def _read(self) -> tuple[Bitmap, Message | None]:
        try:
            stored = await self.store.get(RANGE_ALLOCATION, "", self.name)
        except NotFound:
            return await self._from_legacy(), None
        if stored.range != str(self.range):
            # The range changed (a restart with another flag): start over from what the objects hold.
            return await self._from_held(), stored
        return Bitmap(self.range.size, stored.data), stored

    async def _from_legacy(self) -> Bitmap:
        """No RangeAllocation yet: the held values, and what the ConfigMap of a cluster from before
        marks (for this range) - a value taken for a Service still being stored is not lost."""
        bitmap = await self._from_held()
        try:
            cm = await self.store.get(kinds.kind_named("ConfigMap"), LEGACY_NAMESPACE, self.name)
        except NotFound:
            return bitmap
        if cm.data.get("range") == str(self.range):
            for offset in Bitmap(self.range.size, cm.binary_data.get("allocated", b"")).offsets():
                bitmap.set(offset)
        return bitmap

    async def _from_held(self) -> Bitmap:
        bitmap = Bitmap(self.range.size)
        for value in (await self.held()) if self.held is not None else ():
            offset = self.range.offset(value)
            if offset is not None:
                bitmap.set(offset)
        return bitmap

    async def _change(self, mutate: Callable[[Bitmap], T], *, dry_run: bool = False) -> T:
        for _ in range(_ATTEMPTS):
            bitmap, stored = await self._read()
            before = bitmap.bits
            result = mutate(bitmap)
            if dry_run or bitmap.bits == before:
                return result
            try:
                await self._write(bitmap, stored)
                return result
            except (Conflict, AlreadyExists, NotFound):
                continue
        raise Conflict(f"the {self.name} allocations kept changing; try again")

    async def _write(self, bitmap: Bitmap, stored: Message | None) -> None:
        new = internal_pb2.RangeAllocation(api_version="v1", kind="RangeAllocation")
        if stored is None:
            new.metadata.name = self.name
            RANGE_ALLOCATION.strategy.prepare_create(new)
        else:
            new.CopyFrom(stored)
        new.range = str(self.range)
        new.data = bitmap.to_bytes()
        if stored is not None:
            await self.store.update(new)
            return
        await self.store.create(new)
        try:   # the bitmap has moved out of a user-visible ConfigMap (decision 24)
            await self.store.delete(kinds.kind_named("ConfigMap"), LEGACY_NAMESPACE, self.name)
        except NotFound:
            pass
