"""The namespace controller: a namespace being deleted is emptied, then let go.

Deleting a namespace only marks it (deletionTimestamp, phase Terminating,
spec.finalizers ["kubernetes"]: skiff/api/kinds/namespace.py), and the API
refuses new objects in it. This controller, as Kubernetes' namespace
controller, then deletes every namespaced object of every kind in it (kinds
from the registry, so a new kind needs nothing here), and once nothing is
left removes the `kubernetes` finalizer: the API then removes the namespace.

Deletion is not instant - a bound pod waits for its agent to stop its
containers, an object with finalizers for whoever owns them - so reconcile
looks again after `recheck_seconds` while anything remains.
"""
from __future__ import annotations

import logging

from skiff.api import kinds, meta
from skiff.api.kinds.namespace import FINALIZER
from skiff.client import ApiClient, Conflict, NotFound
from skiff.controller import Controller, Key, SharedInformerFactory

log = logging.getLogger(__name__)


class NamespaceController(Controller):
    name = "namespace"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory, recheck_seconds: float = 1.0) -> None:
        super().__init__(metrics=factory.metrics)
        self.client = client
        self.recheck_seconds = recheck_seconds
        self.namespaces = self.watch(factory.informer("Namespace"))

    async def reconcile(self, key: Key) -> float | None:
        namespace = self.namespaces.get(key)
        if namespace is None or not namespace.metadata.HasField("deletion_timestamp") \
                or FINALIZER not in namespace.spec.finalizers:
            return None
        name = namespace.metadata.name
        remaining = await self.delete_content(name)
        if remaining:
            log.info("namespace %s: waiting for %s", name, ", ".join(f"{n} {k}" for k, n in remaining.items()))
            return self.recheck_seconds
        finalized = meta.copy(namespace)
        finalized.spec.finalizers.remove(FINALIZER)
        try:
            await self.client.update(finalized)
            log.info("namespace %s: empty, finalized", name)
        except NotFound:
            return None
        except Conflict:
            return self.recheck_seconds  # changed meanwhile: look again once the cache has caught up
        return None

    async def delete_content(self, namespace: str) -> dict[str, int]:
        """Ask to delete every object in the namespace; {kind resource: count} of those still there."""
        remaining: dict[str, int] = {}
        for kind in kinds.all_kinds():
            if not kind.namespaced:
                continue
            items, _ = await self.client.list(kind.name, namespace)
            for obj in items:
                if obj.metadata.HasField("deletion_timestamp"):
                    continue  # already going (a pod its agent is stopping, finalizers to run)
                try:
                    await self.client.delete(kind.name, obj.metadata.name, namespace,
                                             precondition_uid=obj.metadata.uid)
                except (NotFound, Conflict):
                    pass  # gone already, or a new object of that name: the next round sees it
            items, _ = await self.client.list(kind.name, namespace)
            if items:
                remaining[kind.resource] = len(items)
        return remaining
