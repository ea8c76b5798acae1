"""The API server's own informers (Kubernetes' loopback informers, which its
admission plug-ins and RBAC authorizer read): a SharedInformerFactory whose
list and watch are the Registry's, in-process, so a cache of PriorityClasses
or RoleBindings costs one watch per kind instead of a store read per request.

    LoopbackInformers(registry)
      .lister(kind)   the kind's informer started on first use; waits for its
                      first list (`NotReady` after `sync_timeout`), then the
                      Lister - read-only objects, kept current by the watch
      .stop()         at server stop

The informers start lazily, on the first request that needs them, because a
registry is made before an event loop runs (FakeApiClient, tests). Like every
informer, these lag the store by one watch event: a reader that must see a
write it has just made reads the store (see priority.py).
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from google.protobuf.message import Message

from controlplane.api import errors
from skiff import client as api
from skiff.api import kinds
from skiff.controller import Lister, SharedInformerFactory

SYNC_TIMEOUT_SECONDS = 10.0   # Kubernetes' admission WaitForReady bound


class NotReady(Exception):
    """The informer has not filled its cache yet (the store does not answer)."""


def _api_error(exc: Exception) -> Exception:
    """The client's exception for a registry error (what the informer expects: Gone -> list again)."""
    abort = errors.status_of(exc)
    return exc if abort is None else api.error_for(abort.code, abort.message, field_path=abort.field_path)


class RegistryListWatcher:
    """skiff.controller.ListWatcher over a Registry: what an informer needs of an API client."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    async def list(self, kind: str, namespace: str = "", label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Message], str]:
        try:
            return await self.registry.list(kinds.kind_named(kind), namespace, label_selector=label_selector,
                                            field_selector=field_selector)
        except Exception as exc:
            raise _api_error(exc) from None

    async def watch(self, kind: str, namespace: str = "", label_selector: str = "", field_selector: str = "",
                    resource_version: str = "", *, bookmarks: bool = False
                    ) -> AsyncIterator[tuple[str, Message | None, str]]:
        stream = self.registry.watch(kinds.kind_named(kind), namespace, label_selector=label_selector,
                                     field_selector=field_selector, resource_version=resource_version,
                                     bookmarks=bookmarks)
        try:
            async for event_type, obj, revision in stream:
                yield event_type, obj, revision
        except Exception as exc:
            raise _api_error(exc) from None
        finally:
            await stream.aclose()


class LoopbackInformers:
    def __init__(self, registry: Any, *, sync_timeout: float = SYNC_TIMEOUT_SECONDS) -> None:
        self.factory = SharedInformerFactory(RegistryListWatcher(registry))
        self.sync_timeout = sync_timeout

    async def lister(self, kind: str) -> Lister:
        informer = self.factory.informer(kind)
        if not informer.running:
            informer.start()
        if not informer.synced:
            try:
                async with asyncio.timeout(self.sync_timeout):
                    await informer.wait_synced()
            except TimeoutError:
                raise NotReady(f"{informer!r} has not listed in {self.sync_timeout:g}s") from None
        return informer.lister

    async def stop(self) -> None:
        await self.factory.stop()


class ReadsLoopbackInformers:
    """For an authorizer that reads the API server's informers: `informers` are the server's
    own (`registry.informers`; the control plane sets them after making the server, decision
    44); until set, informers of its own over `self.store`, made on first use (tests)."""

    store: Any
    _informers: LoopbackInformers | None = None

    @property
    def informers(self) -> LoopbackInformers:
        if self._informers is None:
            from controlplane.api.registry import Registry   # it imports this module
            self._informers = LoopbackInformers(Registry(store=self.store))
        return self._informers

    @informers.setter
    def informers(self, informers: LoopbackInformers) -> None:
        self._informers = informers
