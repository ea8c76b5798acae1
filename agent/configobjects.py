"""The ConfigMaps and Secrets this node's pods refer to, each watched alone.

kubelet's watch-based manager: the node watches exactly the objects its pods
name (env valueFrom / envFrom, configMap / secret / projected volumes,
imagePullSecrets) — one
informer per object, `metadata.name=<name>` in its namespace, from the
process's SharedInformerFactory — never a whole kind, so a node holds no
Secret that none of its pods uses. A watch starts with the first pod that
names the object and ends with the last (`untrack`).

    pod worker: track(pod) ──► informer per referenced object (shared by pods)
    informer add/update/delete ──► on_change(uid) for every pod naming it
        (a container waiting in CreateContainerConfigError starts when its
         ConfigMap appears; mounted volumes are rewritten on an update)

`get` answers from the caches; `wait_synced` lets a start wait (bounded) for
the first list, so "not found" is never said of an object not read yet.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Iterable

from google.protobuf.message import Message

from proto.skiff.v1 import types_pb2
from skiff.api.podrefs import Ref, references  # noqa: F401 - re-exported: the node authorizer shares it
from skiff.controller import Informer, SharedInformerFactory

log = logging.getLogger(__name__)

SYNC_WAIT_SECONDS = 10.0


class ConfigObjects:
    def __init__(self, factory: SharedInformerFactory, *, on_change: Callable[[str], None]) -> None:
        self.factory = factory
        self.on_change = on_change
        self._informers: dict[Ref, Informer] = {}
        self._pods_of: dict[Ref, set[str]] = {}
        self._refs_of: dict[str, set[Ref]] = {}

    def track(self, pod: types_pb2.Pod) -> None:
        """Watch what the pod names (idempotent; a changed spec adds and drops watches)."""
        uid = pod.metadata.uid
        refs = references(pod)
        for ref in self._refs_of.get(uid, set()) - refs:
            self._drop(uid, ref)
        for ref in refs - self._refs_of.get(uid, set()):
            self._pods_of.setdefault(ref, set()).add(uid)
            if ref not in self._informers:
                kind, ns, name = ref
                informer = self.factory.informer(kind, namespace=ns, field_selector=f"metadata.name={name}")
                informer.add_handler(lambda key, ref=ref: self._changed(ref))
                informer.start()
                self._informers[ref] = informer
        self._refs_of[uid] = refs

    def untrack(self, uid: str) -> None:
        for ref in self._refs_of.pop(uid, set()):
            self._drop(uid, ref)

    def _drop(self, uid: str, ref: Ref) -> None:
        pods = self._pods_of.get(ref, set())
        pods.discard(uid)
        if not pods:
            self._pods_of.pop(ref, None)
            informer = self._informers.pop(ref, None)
            if informer is not None:
                asyncio.get_running_loop().create_task(self.factory.release(informer))

    def _changed(self, ref: Ref) -> None:
        for uid in list(self._pods_of.get(ref, ())):
            self.on_change(uid)

    async def wait_synced(self, refs: Iterable[Ref], *, timeout: float = SYNC_WAIT_SECONDS) -> bool:
        """Wait until the caches of refs have their first list; False if that took longer than timeout."""
        waits = [self._informers[r].wait_synced() for r in refs if r in self._informers]
        if not waits:
            return True
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*waits)
            return True
        except TimeoutError:
            return False

    def get(self, kind: str, namespace: str, name: str) -> Message | None:
        informer = self._informers.get((kind, namespace, name))
        return informer.get((namespace, name)) if informer is not None else None
