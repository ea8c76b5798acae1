"""The API's REST logic, kind-agnostic (Kubernetes' generic registry store):
what create, apply, update, update_status, delete, bind, get, list and watch
do to any object, over any Store (etcd for the server, memory for
FakeApiClient). The kind's own rules come from its Strategy
(skiff/api/kinds/); this module never asks which kind it holds.

    create   defaults → validate → namespace admission → prepare_create → admission.mutate
             → the kind's admission plug-ins → store.create
    update   defaults → validate → prepare_update → admission.mutate → the kind's admission
             plug-ins → validate_update → CAS write
    status   prepare_status_update → validate → CAS write
    delete   propagation finalizer → on_delete (graceful mark) or finalizers
             (mark deletionTimestamp, keep) or remove
    write    an object left with a deletionTimestamp, no finalizers and no
             grace period pending is removed instead of written (Kubernetes'
             "finalizers done: delete")

Namespace admission is Kubernetes' NamespaceLifecycle: a namespaced object is
created only in a namespace that exists and is not being terminated.

Errors are the store's (NotFound, AlreadyExists, Conflict, Compacted,
Unavailable) and errors.py's Invalid and Forbidden; service.py maps them to
gRPC codes, FakeApiClient to the client's exceptions.
"""
from __future__ import annotations

import base64
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, Protocol, Sequence

from google.protobuf.message import Message

from controlplane.api import plugins, priority
from controlplane.api.errors import Forbidden, Invalid
from controlplane.api.informers import LoopbackInformers, NotReady
from controlplane.store.cacher import Cacher, Page, paginate, sorted_items
from controlplane.store.interface import AlreadyExists, Conflict, NotFound
from proto.skiff.v1 import types_pb2
from skiff.api import kinds, meta
from skiff.api.kinds.pod import DEFAULT_TOLERATION_SECONDS, add_default_tolerations
from skiff.api.kinds.strategy import DEFAULT_NAMESPACE
from skiff.api.selectors import FieldSelector, LabelSelector, SelectorError, parse_field_selector, \
    parse_label_selector
from skiff.api.validation import MAX_DURATION_SECONDS

PROPAGATION_POLICIES = ("", "Background", "Foreground", "Orphan")
# What a propagation policy leaves on the object for the garbage collector.
PROPAGATION_FINALIZERS = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}
# The namespaces every cluster has from the start (kube-* so manifests naming them apply).
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "skiff-system")
LIVE_LOOKUP_SECONDS = 30.0   # Kubernetes' NamespaceLifecycle forceLiveLookupTTL
_ATTEMPTS = 10  # a concurrent writer only means: read and build again, this many times


def encode_continue(revision: str | int, after: tuple[str, str]) -> str:
    """A list's `continue` token, as Kubernetes': the revision of the first page and
    the key (namespace/name) of the last object sent; the next page is the state at
    that revision after that key (the watch cache rebuilds it; a revision older than
    its window is 410 Expired). REST and gRPC hand out the same tokens."""
    data = {"v": "meta.k8s.io/v1", "rv": int(revision), "start": "/".join(after)}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    """(revision, last key) of a token encode_continue made; Invalid otherwise."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, _, name = str(data["start"]).rpartition("/")
        revision = int(data["rv"])
        if revision < 0 or not name:
            raise ValueError(token)
        return revision, (namespace, name)
    except (ValueError, KeyError, TypeError):
        raise Invalid("continue key is not valid: the token could not be decoded", "continue") from None


def list_option_errors(resource_version: str, match: str, token: str) -> list[tuple[str, str]]:
    """Kubernetes' ValidateListOptions for resourceVersion, resourceVersionMatch and
    continue: (field, message) pairs, none for a valid combination."""
    causes: list[tuple[str, str]] = []
    if match not in ("", "Exact", "NotOlderThan"):
        causes.append(("resourceVersionMatch", f'Unsupported value: "{match}": supported values: "Exact", '
                                               f'"NotOlderThan", ""'))
    elif token:
        if resource_version and resource_version != "0":
            causes.append(("resourceVersion", "Forbidden: specifying resource version is not allowed when "
                                              "using continue"))
        if match:
            causes.append(("resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden when "
                                                   "continue is provided"))
    elif match and not resource_version:
        causes.append(("resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden unless "
                                               "resourceVersion is provided"))
    elif match == "Exact" and resource_version == "0":
        causes.append(("resourceVersionMatch", 'Forbidden: resourceVersionMatch "exact" is forbidden for '
                                               'resourceVersion "0"'))
    return causes


@dataclass(frozen=True)
class Admission:
    """Mutating admission the server applies at create (Kubernetes'
    DefaultTolerationSeconds, with Skiff's defaults; the control plane's
    --default-not-ready-toleration-seconds / --default-unreachable-toleration-seconds)."""
    not_ready_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS
    unreachable_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS

    def mutate(self, obj: Message, *, old: Message | None = None) -> Message:
        """At create; at update (`old`) a manifest that omits the default
        tolerations keeps the ones the pod got (its spec is immutable)."""
        if isinstance(obj, types_pb2.Pod):
            if old is not None:
                add_default_tolerations(obj.spec, like=old.spec)
            add_default_tolerations(obj.spec, not_ready_seconds=self.not_ready_toleration_seconds,
                                    unreachable_seconds=self.unreachable_toleration_seconds)
        return obj


class Delivery(tuple):
    """A watch item: (type, object, resourceVersion), and `encoded`: the bytes of it per wire
    format ((format, type) -> bytes), shared by every watcher of the cache's event."""

    def __new__(cls, type_: str, obj: Message | None, revision: str, encoded: dict) -> "Delivery":
        item = super().__new__(cls, (type_, obj, revision))
        item.encoded = encoded
        return item


class WriteHook(Protocol):
    """Values the server allocates for a kind's objects from a shared pool (a Service's cluster IP
    and node ports: controlplane/services/hook.py): taken before a write, given back if the write
    fails, and released once the object no longer holds them. The registry calls the hook
    registered under the object's kind name; other kinds have none."""

    async def take(self, old: Message | None, new: Message, *, dry_run: bool = False) -> Any: ...

    async def give_back(self, taken: Any) -> None: ...

    async def stored(self, old: Message | None, new: Message) -> None: ...

    async def removed(self, obj: Message) -> None: ...


class AdmissionPlugin(Protocol):
    """A kind's admission step (Kubernetes' admission plug-ins; Priority for Pods and
    PriorityClasses: controlplane/api/priority.py): at create (`old` None) and update, after the
    strategy has prepared `new` and before the update's checks and the write, it may fill fields
    of `new` or refuse it (Forbidden, Invalid). The registry calls the plug-ins registered under
    the object's kind name (the server's set: controlplane/api/plugins.py); other kinds have none."""

    async def admit(self, old: Message | None, new: Message) -> None: ...


class Registry:
    def __init__(self, *, store: Any, admission: Admission = Admission(),
                 hooks: Mapping[str, WriteHook] | None = None,
                 admission_plugins: Mapping[str, Sequence[AdmissionPlugin]] | None = None) -> None:
        self.store = store
        self._cacher = store if isinstance(store, Cacher) else None
        self.admission = admission
        self.hooks: dict[str, WriteHook] = dict(hooks or {})  # kind name -> its WriteHook
        # The server's own informers over this registry (cached listers for admission), started on first use.
        self.informers = LoopbackInformers(self)
        # Namespaces this registry began deleting -> when: admission reads them from the store for a
        # while, not from the cache that may not show it yet (NamespaceLifecycle's forceLiveLookup).
        self._namespaces_deleted: dict[str, float] = {}
        self.admission_plugins: dict[str, list[AdmissionPlugin]] = {   # kind name -> its plug-ins, in order
            name: list(p) for name, p in (plugins.default(self) if admission_plugins is None
                                          else admission_plugins).items()}

    async def close(self) -> None:
        """Stop the informers (at server stop)."""
        await self.informers.stop()

    # ------------------------------------------------------------ writes

    async def apply(self, obj: Message, *, dry_run: bool = False) -> tuple[Message, str]:
        """Create or update from a manifest: "created", "configured" or "unchanged"."""
        incoming = self._incoming(obj)
        kind, ns, name = _key_of(incoming)
        strategy = kind.strategy
        for _ in range(_ATTEMPTS):
            try:
                existing = await self.store.get(kind, ns, name)
            except NotFound:
                await self._admit(kind, ns)
                created = self.admission.mutate(strategy.prepare_create(meta.copy(incoming)))
                await self._run_plugins(None, created)
                try:
                    return await self._hooked(None, created, lambda: self._create(created, dry_run=dry_run),
                                              dry_run=dry_run), "created"
                except AlreadyExists:
                    continue
            merged = self.admission.mutate(strategy.prepare_apply(existing, incoming), old=existing)
            await self._run_plugins(existing, merged)
            self._check_update(existing, merged)
            if same_content(merged, existing):
                return existing, "unchanged"
            merged.metadata.resource_version = existing.metadata.resource_version
            try:
                return await self._hooked(existing, merged, lambda: self._update(merged, dry_run=dry_run),
                                          dry_run=dry_run), "configured"
            except (Conflict, NotFound):
                continue
        raise Conflict(f"{kind.name} {name!r} kept changing during apply; try again")

    async def create(self, obj: Message, *, dry_run: bool = False) -> Message:
        incoming = self._incoming(obj)
        kind, ns, _ = _key_of(incoming)
        await self._admit(kind, ns)
        created = self.admission.mutate(kind.strategy.prepare_create(incoming))
        await self._run_plugins(None, created)
        return await self._hooked(None, created, lambda: self._create(created, dry_run=dry_run), dry_run=dry_run)

    async def update(self, obj: Message) -> Message:
        """Replace the object's spec side (CAS when metadata.resourceVersion is set)."""
        incoming = self._incoming(obj)
        strategy = kinds.kind_of(incoming).strategy

        async def build(existing: Message) -> Message:
            updated = self.admission.mutate(strategy.prepare_update(existing, incoming), old=existing)
            await self._run_plugins(existing, updated)
            self._check_update(existing, updated)
            return updated
        return await self._replace(incoming, build)

    async def update_status(self, obj: Message) -> Message:
        """Replace only the status (CAS when metadata.resourceVersion is set)."""
        kind = kinds.kind_of(obj)
        incoming = kind.strategy.defaults(meta.copy(obj))
        if not kind.strategy.has_status:
            raise Invalid(f"{kind.name} has no status", field_path="status")

        async def build(existing: Message) -> Message:
            updated = kind.strategy.prepare_status_update(existing, incoming)
            errors = kind.strategy.validate_status(updated)
            if errors:
                raise Invalid("; ".join(map(str, errors)), field_path=errors[0].path)
            return updated
        return await self._replace(incoming, build)

    async def delete(self, kind: kinds.Kind, namespace: str, name: str, *,
                     grace_period_seconds: int | None = None, precondition_uid: str = "",
                     propagation_policy: str = "") -> Message:
        """Remove the object, or mark it: a graceful deletion (a bound pod) or
        finalizers still to run keep it, with metadata.deletionTimestamp set.
        Returns the last state (removed) or the marked object."""
        if propagation_policy not in PROPAGATION_POLICIES:
            raise Invalid(f"unsupported propagation policy {propagation_policy!r}: supported values: "
                          f"Background, Foreground, Orphan", field_path="propagationPolicy")
        if grace_period_seconds is not None and grace_period_seconds > MAX_DURATION_SECONDS:
            raise Invalid(f"Invalid value: {grace_period_seconds}: must be at most {MAX_DURATION_SECONDS} "
                          f"seconds", field_path="gracePeriodSeconds")
        ns = self._namespace(kind, namespace)
        if kind.name == "Namespace":
            now = time.monotonic()
            self._namespaces_deleted = {n: t for n, t in self._namespaces_deleted.items()
                                        if now - t < LIVE_LOOKUP_SECONDS}
            self._namespaces_deleted[name] = now
        for _ in range(_ATTEMPTS):
            existing = await self.store.get(kind, ns, name)
            if precondition_uid and precondition_uid != existing.metadata.uid:
                raise Conflict(f"{kind.name} {name!r}: precondition failed: uid is "
                               f"{existing.metadata.uid}, request had {precondition_uid}")
            if refused := kind.strategy.delete_refused(existing):
                raise Forbidden(refused)
            target = meta.copy(existing)
            finalizer = PROPAGATION_FINALIZERS.get(propagation_policy)
            if finalizer and finalizer not in target.metadata.finalizers:
                target.metadata.finalizers.append(finalizer)
            marked = kind.strategy.on_delete(target, grace_period_seconds)
            if marked is None and kind.strategy.finalizers(target):
                marked = target
                if not marked.metadata.HasField("deletion_timestamp"):
                    marked.metadata.deletion_timestamp.CopyFrom(meta.timestamp())
                marked.metadata.deletion_grace_period_seconds = 0  # removed once the finalizers are done
            try:
                if marked is None:
                    return await self._removed(await self.store.delete(
                        kind, ns, name, resource_version=existing.metadata.resource_version))
                if marked == existing:
                    return existing  # already marked; nothing new to write
                marked.metadata.resource_version = existing.metadata.resource_version
                return await self.store.update(marked)
            except Conflict:
                continue
        raise Conflict(f"{kind.name} {name!r} kept changing during delete; try again")

    async def bind(self, namespace: str, name: str, node_name: str, *, resource_version: str = "") -> Message:
        """Assign a pod to a node (Kubernetes' pods/binding); 409 when it is bound or being deleted."""
        if not node_name:
            raise Invalid("node_name is required", field_path="target.name")
        kind, namespace = kinds.kind_named("Pod"), namespace or DEFAULT_NAMESPACE
        # From the watch cache's pod first (see _replace); what refuses that one is asked of the store's.
        cached = self._cacher.peek(kind, namespace, name) if self._cacher is not None else None
        if cached is not None:
            try:
                return await self._bind(cached, node_name, resource_version=resource_version)
            except (Conflict, NotFound):
                pass
        return await self._bind(await self.store.get(kind, namespace, name), node_name,
                                resource_version=resource_version)

    async def _bind(self, pod: Message, node_name: str, *, resource_version: str) -> Message:
        if resource_version and resource_version != pod.metadata.resource_version:
            raise Conflict(f"pod {pod.metadata.name!r} was modified (resourceVersion "
                           f"{pod.metadata.resource_version}, request had {resource_version})")
        try:
            bound = kinds.kind_of(pod).strategy.bind(pod, node_name)
        except ValueError as exc:
            raise Conflict(str(exc)) from None
        return await self.store.update(bound)

    # ------------------------------------------------------------ reads

    async def get(self, kind: kinds.Kind, namespace: str, name: str, *, resource_version: str = "") -> Message:
        """The object: resource_version "" the latest (a quorum read), "0" any, R not older than R;
        the last two from the watch cache when the store has one (kubelet reads its Node so)."""
        namespace = self._namespace(kind, namespace)
        if resource_version and hasattr(self.store, "get_at"):
            return await self.store.get_at(kind, namespace, name, resource_version=resource_version)
        return await self.store.get(kind, namespace, name)

    async def list(self, kind: kinds.Kind, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Message], str]:
        """The matching objects ("" namespace: all) and the revision they were read at."""
        labels, fields = _selectors(kind, label_selector, field_selector)
        items, revision = await self.store.list(kind, namespace if kind.namespaced else "")
        return [o for o in items if labels.matches(o.metadata.labels) and fields.matches(o)], str(revision)

    async def list_chunk(self, kind: kinds.Kind, namespace: str = "", *, label_selector: str = "",
                         field_selector: str = "", resource_version: str = "", resource_version_match: str = "",
                         limit: int = 0, token: str = "") -> tuple[list[Message], str, str]:
        """list_page with the request's own words, as gRPC's List (and the fake client) take them:
        the ListOptions checked (Invalid naming the field), `token` a continue token;
        (objects, revision, the next page's token or "")."""
        for field, message in list_option_errors(resource_version, resource_version_match, token):
            raise Invalid(message, field)
        page = await self.list_page(kind, namespace, label_selector=label_selector, field_selector=field_selector,
                                    resource_version=resource_version, resource_version_match=resource_version_match,
                                    limit=max(limit, 0), continue_from=decode_continue(token) if token else None)
        next_token = encode_continue(page.revision, page.next_key) if page.next_key is not None else ""
        return page.items, str(page.revision), next_token

    def serialized(self, obj: Message) -> bytes:
        """The object's bytes: from the watch cache, made once per version it holds."""
        serialized = getattr(self.store, "serialized", None)
        return serialized(obj) if serialized is not None else obj.SerializeToString()

    async def list_page(self, kind: kinds.Kind, namespace: str = "", *, label_selector: str = "",
                        field_selector: str = "", resource_version: str = "", resource_version_match: str = "",
                        limit: int = 0, continue_from: tuple[int, tuple[str, str]] | None = None) -> Page:
        """A list as Kubernetes' LIST reads it: at `resource_version` ("" the latest, "0" any,
        R with `resource_version_match` NotOlderThan or Exact), `limit` objects a page in key
        order, continuing after `continue_from` = (the first page's revision, the last key).
        Served by the watch cache (controlplane/store/cacher.py) when the store is one; over
        a plain store a later page is read at the store's current revision."""
        labels, fields = _selectors(kind, label_selector, field_selector)

        def matches(obj: Message) -> bool:
            return labels.matches(obj.metadata.labels) and fields.matches(obj)
        namespace = namespace if kind.namespaced else ""
        if hasattr(self.store, "list_page"):
            return await self.store.list_page(kind, namespace, resource_version=resource_version,
                                              match=resource_version_match, limit=limit,
                                              continue_from=continue_from, predicate=matches)
        items, revision = await self.store.list(kind, namespace)
        return paginate(sorted_items({(o.metadata.namespace, o.metadata.name): o for o in items}),
                        continue_from[0] if continue_from else revision, limit=limit,
                        after=continue_from[1] if continue_from else None, predicate=matches)

    async def watch(self, kind: kinds.Kind, namespace: str = "", *, label_selector: str = "",
                    field_selector: str = "", resource_version: str = "", bookmarks: bool = False
                    ) -> AsyncIterator[Delivery]:
        """(type, object, resourceVersion) for every change after `resource_version`
        (empty: the current objects first, as ADDED). An object that stops matching
        the selectors is DELETED to this watcher, one that starts matching ADDED.
        With `bookmarks` and the watch cache, ("BOOKMARK", None, revision) when idle.
        Each item's `encoded` is shared by every watcher of the same event: a wire
        format's bytes of it, made by the first watcher that sends it."""
        labels, fields = _selectors(kind, label_selector, field_selector)
        namespace = namespace if kind.namespaced else ""

        def matches(obj: Message | None) -> bool:
            return obj is not None and labels.matches(obj.metadata.labels) and fields.matches(obj)

        if resource_version:
            try:
                revision = int(resource_version)
            except ValueError:
                raise Invalid(f"resource_version {resource_version!r} is not a number",
                              field_path="resource_version") from None
        else:
            items, revision = await self.store.list(kind, namespace)
            for obj in items:
                if matches(obj):
                    yield Delivery("ADDED", obj, obj.metadata.resource_version, {})
        options: dict = {}
        if hasattr(self.store, "list_page"):   # the watch cache
            options["fields"] = {r.field: r.value for r in fields.requirements if r.op == "="}
            if bookmarks:
                options["bookmarks"] = True
        # Closed with this generator, not when the collector gets to it: the watch cache's
        # watcher (and its share of every event) goes as the client does.
        async with contextlib.aclosing(self.store.watch(kind, namespace, after_revision=revision,
                                                        **options)) as events:
            async for event in events:
                if event.type == "BOOKMARK":
                    yield Delivery("BOOKMARK", None, str(event.revision), {})
                    continue
                now, before = matches(event.obj), matches(event.prev)
                if event.type == "DELETED":
                    seen_as = "DELETED" if now else None
                elif now and (before or event.type == "MODIFIED" and event.prev is None):
                    seen_as = "MODIFIED"
                elif now:
                    seen_as = "ADDED"
                elif before:  # left the selector: to this watcher it is gone
                    seen_as = "DELETED"
                else:
                    seen_as = None
                if seen_as is not None:
                    shared = getattr(event, "encoded", None)   # the watch cache's event: one per event
                    yield Delivery(seen_as, event.obj, str(event.revision), {} if shared is None else shared)

    # ------------------------------------------------------------ namespaces

    async def bootstrap(self) -> None:
        """Create the initial namespaces (idempotent; run at control-plane start)."""
        for name in INITIAL_NAMESPACES:
            await self._ensure_namespace(name)
        await priority.bootstrap(self.create)

    async def _ensure_namespace(self, name: str) -> Message:
        ns = kinds.kind_named("Namespace").message()
        ns.metadata.name = name
        try:
            return await self.create(ns)
        except AlreadyExists:
            return await self.store.get(kinds.kind_named("Namespace"), "", name)

    async def _admit(self, kind: kinds.Kind, namespace: str) -> None:
        """Kubernetes' NamespaceLifecycle: new content only in a live namespace.
        An initial namespace that is missing (a request before bootstrap ran,
        or a store that never had it) is created on the spot."""
        if not kind.namespaced:
            return
        # From the API server's namespace cache, as Kubernetes' plug-in reads it (a create read
        # its namespace from etcd: 17 000 of a 3000-pod run's etcd reads). The store answers
        # instead for a namespace the cache lacks (just created) or shows terminating (it may be
        # a new one of the same name), and for a while after this registry began deleting it.
        ns = None
        deleted = self._namespaces_deleted.get(namespace)
        if deleted is None or time.monotonic() - deleted >= LIVE_LOOKUP_SECONDS:
            try:
                ns = (await self.informers.lister("Namespace")).get_named("", namespace)
            except NotReady:
                ns = None
            if ns is not None and ns.metadata.HasField("deletion_timestamp"):
                ns = None
        try:
            if ns is None:
                ns = await self.store.get(kinds.kind_named("Namespace"), "", namespace)
        except NotFound:
            if namespace not in INITIAL_NAMESPACES:
                raise NotFound(f'namespaces "{namespace}" not found') from None
            ns = await self._ensure_namespace(namespace)
        if ns.metadata.HasField("deletion_timestamp"):
            raise Forbidden(f"unable to create new content in namespace {namespace} "
                            f"because it is being terminated")

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _incoming(obj: Message) -> Message:
        """A copy of the caller's object, defaulted and validated (Invalid lists every problem)."""
        kind = kinds.kind_of(obj)
        incoming = kind.strategy.defaults(meta.copy(obj))
        errors = kind.strategy.validate(incoming)
        if errors:
            detail = "; ".join(str(e) for e in errors)
            raise Invalid(f'{kind.name} "{incoming.metadata.name}" is invalid: {detail}', field_path=errors[0].path)
        return incoming

    @staticmethod
    def _check_update(old: Message, new: Message) -> None:
        kind = kinds.kind_of(new)
        errors = kind.strategy.validate_update(old, new)
        if errors:
            detail = "; ".join(str(e) for e in errors)
            raise Invalid(f'{kind.name} "{new.metadata.name}" is invalid: {detail}', field_path=errors[0].path)

    @staticmethod
    def _namespace(kind: kinds.Kind, namespace: str) -> str:
        return (namespace or DEFAULT_NAMESPACE) if kind.namespaced else ""

    async def _write(self, obj: Message) -> Message:
        """store.update(obj) with CAS, or, when obj is deleted and nothing holds it
        any more, its removal (Kubernetes: the last finalizer gone, the object goes)."""
        kind = kinds.kind_of(obj)
        m = obj.metadata
        if m.HasField("deletion_timestamp") and not kind.strategy.finalizers(obj) \
                and m.deletion_grace_period_seconds == 0:
            deleted = await self.store.delete(kind, m.namespace, m.name, resource_version=m.resource_version)
            gone = meta.copy(obj)
            gone.metadata.resource_version = deleted.metadata.resource_version
            return await self._removed(gone)
        return await self.store.update(obj)

    async def _create(self, obj: Message, *, dry_run: bool) -> Message:
        if dry_run:   # refused as the write would be, size included
            self.store.check_size(obj)
            return obj
        return await self.store.create(obj)

    async def _update(self, obj: Message, *, dry_run: bool) -> Message:
        if dry_run:
            self.store.check_size(obj)
            return obj
        return await self._write(obj)

    async def _hooked(self, old: Message | None, new: Message, write: Callable[[], Awaitable[Message]], *,
                      dry_run: bool = False) -> Message:
        """write() with the kind's WriteHook around it: values taken first (filled into `new`),
        given back if the write fails, the ones only `old` held released once it is stored."""
        hook = self.hooks.get(kinds.kind_of(new).name)
        if hook is None:
            return await write()
        taken = await hook.take(old, new, dry_run=dry_run)
        try:
            stored = await write()
        except BaseException:
            if not dry_run:
                await hook.give_back(taken)
            raise
        if not dry_run:
            await hook.stored(old, stored)
        return stored

    async def _run_plugins(self, old: Message | None, new: Message) -> None:
        for plugin in self.admission_plugins.get(kinds.kind_of(new).name, ()):
            await plugin.admit(old, new)

    async def _removed(self, obj: Message) -> Message:
        """The object is gone from the store: its hook releases what it held."""
        hook = self.hooks.get(kinds.kind_of(obj).name)
        if hook is not None:
            await hook.removed(obj)
        return obj

    async def _replace(self, incoming: Message, build: Callable[[Message], Awaitable[Message]]) -> Message:
        """Write build(existing) with CAS. With the caller's resourceVersion set,
        a stale one is a Conflict; without, a concurrent writer only means: read
        and build again (last writer wins on what the caller sends).

        The first attempt starts from the watch cache's object when it is the
        version the caller names (or the caller names none), as Kubernetes'
        GuaranteedUpdate does: no store read for the usual write. The write is a
        CAS on that version, so a cache behind the store costs one Conflict and
        an attempt from the store's object, never a lost write; whatever else
        refuses the cache's version is asked again of the store's."""
        kind, ns, name = _key_of(incoming)
        rv = incoming.metadata.resource_version
        guess = self._cacher.peek(kind, ns, name) if self._cacher is not None else None
        if guess is not None and rv and guess.metadata.resource_version != rv:
            guess = None
        for _ in range(_ATTEMPTS):
            from_cache = guess is not None
            existing = guess if guess is not None else await self.store.get(kind, ns, name)
            guess = None
            if rv and rv != existing.metadata.resource_version:
                raise Conflict(f"{kind.name} {name!r} was modified (resourceVersion "
                               f"{existing.metadata.resource_version}, request had {rv}); read it again and retry")
            # From the cache's object, any refusal (a check against a version the store has moved
            # past, or an object it no longer has) is decided again on the store's.
            try:
                updated = await build(existing)
            except Exception:
                if from_cache:
                    continue
                raise
            updated.metadata.resource_version = existing.metadata.resource_version
            try:
                return await self._hooked(existing, updated, lambda: self._write(updated))
            except Conflict:
                if rv:   # the caller's version (the cache's too, if it was used) is not the latest
                    raise
            except Exception:
                if not from_cache:
                    raise
        raise Conflict(f"{kind.name} {name!r} kept changing; try again")


def _key_of(obj: Message) -> tuple[kinds.Kind, str, str]:
    return kinds.kind_of(obj), obj.metadata.namespace, obj.metadata.name


def _selectors(kind: kinds.Kind, label_selector: str, field_selector: str) -> tuple[LabelSelector, FieldSelector]:
    try:
        return parse_label_selector(label_selector), parse_field_selector(field_selector, kind=kind)
    except SelectorError as exc:
        raise Invalid(str(exc)) from None


def same_content(a: Message, b: Message) -> bool:
    """Whether an apply would change nothing the user controls: labels,
    annotations and the spec (kinds without spec or status: every field)."""
    has = type(a).DESCRIPTOR.fields_by_name
    if "spec" not in has and "status" not in has:
        x, y = meta.copy(a), meta.copy(b)
        x.ClearField("metadata"), y.ClearField("metadata")
        if x != y:
            return False
    return (dict(a.metadata.labels) == dict(b.metadata.labels)
            and dict(a.metadata.annotations) == dict(b.metadata.annotations)
            and ("spec" not in has or a.spec == b.spec))
