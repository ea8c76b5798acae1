"""The verbs on a resource, translated onto the Registry.

Each handler reads the request (path target, query, body), calls the same
Registry the gRPC service calls (so validation, admission, compare-and-swap,
graceful deletion and watch semantics are the registry's and the kind
strategies', never redone here), and writes Kubernetes' answer: the object
as printers.to_dict prints it, a List, a Table, a watch stream or a Status.

    GET    collection  list (?watch=1: watch)      POST  collection  create
    GET    item        get                         PUT   item        update (409 on a stale resourceVersion)
    PATCH  item        json / merge / strategic patch, apply-patch (server-side apply: apply.py)
    DELETE item        delete (DeleteOptions)      DELETE collection  deletecollection
    status, scale      get / update / patch of the subresource
    POST   pods/NAME/eviction   a policy/v1 Eviction (controlplane/api/eviction.py: disruption budgets)
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web
from google.protobuf.message import Message

from controlplane import store as st
from controlplane.api import eviction
from controlplane.api.errors import Invalid
from controlplane.api.registry import Registry, list_option_errors, \
    same_content
from controlplane.rest import apply as server_side_apply
from controlplane.rest import codec, tables
from controlplane.rest.discovery import Served
from controlplane.rest.status import ApiError, bad_request, from_exception, invalid
from skiff.api import labelselector, merge, meta, printers

log = logging.getLogger(__name__)

JSON = "application/json"
_ATTEMPTS = 10
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}


@dataclass(frozen=True)
class Target:
    served: Served
    namespace: str          # "" for a cluster-scoped kind or all namespaces
    name: str = ""
    subresource: str = ""

    @property
    def what(self) -> dict[str, str]:
        return {"resource": self.served.qualified, "name": self.name}


# Subresources whose writes replace the status (a CSR's approval: its conditions, as kubectl sends them).
_STATUS_WRITES = ("status", "approval")


async def _admit(request: web.Request, verb: str, t: Target, obj: Message) -> None:
    """Admission with the requester (controlplane/requestadmission.py), set by the server when secure."""
    admit = request.get("admit")
    if admit is None:
        return
    from controlplane.auth import Attributes
    attributes = Attributes(verb=verb, resource=t.served.kind.resource, subresource=t.subresource,
                            namespace=t.namespace, name=t.name, api_group=t.served.group)
    message = await admit(attributes, obj)
    if message is not None:
        raise ApiError(403, "Forbidden", message, {"kind": t.served.kind.resource,
                                                   **({"name": t.name} if t.name else {})})


def respond(data: Any, *, status: int = 200) -> web.Response:
    return web.Response(body=codec.encode(data), status=status, content_type=JSON)


def error_response(err: ApiError, *, headers: dict[str, str] | None = None) -> web.Response:
    response = respond(err.body(), status=err.code)
    response.headers.update(headers or {})
    return response


class ResourceHandlers:
    def __init__(self, *, registry: Registry, bookmark_seconds: float = 10.0) -> None:
        self.registry = registry
        self.bookmark_seconds = bookmark_seconds

    # ------------------------------------------------------------ reads

    async def get(self, request: web.Request, t: Target) -> web.StreamResponse:
        obj = await self.registry.get(t.served.kind, t.namespace, t.name,
                                      resource_version=request.query.get("resourceVersion", ""))
        if t.subresource == "scale":
            return respond(self._scale(obj))
        if tables.wants_table(request.headers.get("Accept", "")):
            return respond(tables.table([obj], kind=t.served.kind, resource_version=obj.metadata.resource_version,
                                        include_object=request.query.get("includeObject", "Metadata")))
        return respond(printers.to_dict(obj))

    async def list(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        if codec.flag(q, "watch"):
            return await self.watch(request, t)
        kind = t.served.kind
        rv, match, token = q.get("resourceVersion", ""), q.get("resourceVersionMatch", ""), q.get("continue", "")
        _check_list_options(rv, match, token)
        limit = max(codec.integer(q, "limit") or 0, 0)
        try:
            items, revision, next_token = await self.registry.list_chunk(
                kind, t.namespace, label_selector=q.get("labelSelector", ""),
                field_selector=q.get("fieldSelector", ""), resource_version=rv, resource_version_match=match,
                limit=limit, token=token)
        except Invalid as exc:   # only the selectors and the token can be: Kubernetes answers 400 for them
            raise bad_request(exc.message) from None
        if not limit and not token:
            items.sort(key=kind.strategy.sort_key)   # a whole list in the kind's order (pages: key order)
        token = next_token
        if tables.wants_table(request.headers.get("Accept", "")):
            return respond(tables.table(items, kind=kind, resource_version=revision, continue_token=token,
                                        include_object=q.get("includeObject", "Metadata")))
        metadata = {"resourceVersion": revision, **({"continue": token} if token else {})}
        return respond({"kind": f"{kind.name}List", "apiVersion": kind.api_version, "metadata": metadata,
                        "items": [printers.to_dict(o) for o in items]})

    async def watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        """A chunked stream of {"type","object"} lines. A revision compacted away
        ends it with an ERROR event carrying a 410 Status, as Kubernetes sends it;
        BOOKMARK events carry the last revision seen when the client allows them."""
        q = request.query
        kind = t.served.kind
        as_table = tables.wants_table(request.headers.get("Accept", ""))
        rv = q.get("resourceVersion", "")
        timeout = codec.integer(q, "timeoutSeconds")
        bookmarks = codec.flag(q, "allowWatchBookmarks")
        events = self.registry.watch(kind, t.namespace, label_selector=q.get("labelSelector", ""),
                                     field_selector=q.get("fieldSelector", ""),
                                     resource_version="" if rv in ("", "0") else rv, bookmarks=bookmarks)
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        await response.prepare(request)
        queue: asyncio.Queue[tuple[str, Message | None, str] | BaseException | None] = asyncio.Queue(maxsize=1000)

        async def pump() -> None:
            try:
                async for event in events:
                    await queue.put(event)
                await queue.put(None)   # the watch cache closed it (a client too slow): end the stream
            except BaseException as exc:  # noqa: BLE001 - handed to the writer, which reports it
                await queue.put(exc)

        def line(type_: str, obj: Any) -> bytes:
            return codec.encode({"type": type_, "object": obj}) + b"\n"

        pumping = asyncio.create_task(pump())
        last = rv
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        next_bookmark = loop.time() + self.bookmark_seconds
        try:
            while deadline is None or loop.time() < deadline:
                if request.transport is None or request.transport.is_closing():
                    break
                try:
                    async with asyncio.timeout(1.0):   # not wait_for: see controlplane/store/etcd.py
                        item = await queue.get()
                except TimeoutError:
                    if bookmarks and last and loop.time() >= next_bookmark:
                        next_bookmark = loop.time() + self.bookmark_seconds
                        await response.write(line("BOOKMARK", {"kind": kind.name, "apiVersion": kind.api_version,
                                                               "metadata": {"resourceVersion": last}}))
                    continue
                if item is None:
                    break
                if isinstance(item, BaseException):
                    if isinstance(item, asyncio.CancelledError):
                        break
                    err = from_exception(item, resource=t.served.qualified)
                    await response.write(line("ERROR", err.body()))
                    break
                type_, obj, last = item
                if obj is None:   # the watch cache's BOOKMARK: the revision moved
                    next_bookmark = loop.time() + self.bookmark_seconds
                    await response.write(line("BOOKMARK", {"kind": kind.name, "apiVersion": kind.api_version,
                                                           "metadata": {"resourceVersion": last}}))
                    continue
                if as_table:
                    await response.write(line(type_, tables.table([obj], kind=kind, resource_version=last,
                                                                  include_object=q.get("includeObject", "Metadata"))))
                    continue
                # The line is made once per event and shared by every watcher (the watch cache's event).
                encoded = item.encoded.get(("json", type_))
                if encoded is None:
                    encoded = item.encoded[("json", type_)] = line(type_, printers.to_dict(obj))
                await response.write(encoded)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            pumping.cancel()
            await asyncio.gather(pumping, return_exceptions=True)
            await events.aclose()
        try:
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass
        return response

    # ------------------------------------------------------------ writes

    async def create(self, request: web.Request, t: Target) -> web.StreamResponse:
        obj = codec.to_object(await self._body(request), t.served, namespace=t.namespace)
        await _admit(request, "create", t, obj)
        try:
            created = await self.registry.create(obj, dry_run=_dry_run(request))
        except st.AlreadyExists as exc:   # the name is the body's, not the URL's
            raise from_exception(exc, resource=t.served.qualified, name=obj.metadata.name) from None
        return respond(printers.to_dict(created), status=201)

    async def update(self, request: web.Request, t: Target) -> web.StreamResponse:
        body = await self._body(request)
        if t.subresource == "scale":
            replicas = (body.get("spec") or {}).get("replicas") if isinstance(body, dict) else None
            rv = ((body.get("metadata") or {}).get("resourceVersion", "")) if isinstance(body, dict) else ""
            return respond(await self._set_replicas(t, replicas, rv))
        obj = codec.to_object(body, t.served, namespace=t.namespace, name=t.name)
        await _admit(request, "update", t, obj)
        if _dry_run(request):
            return respond(await self._dry_run_update(obj))
        write = self.registry.update_status if t.subresource in _STATUS_WRITES else self.registry.update
        return respond(printers.to_dict(await write(obj)))

    async def patch(self, request: web.Request, t: Target) -> web.StreamResponse:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        patch_type = PATCH_TYPES.get(content_type)
        if patch_type is None:
            raise ApiError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown format - accepted media types include: "
                           f"{', '.join(PATCH_TYPES)}")
        body = await self._body(request)
        if patch_type == "apply":
            return await self._apply(request, t, body)
        for _ in range(_ATTEMPTS):
            existing = await self.registry.get(t.served.kind, t.namespace, t.name)
            current = self._scale(existing) if t.subresource == "scale" else printers.to_dict(existing)
            patched = _patched(patch_type, current, body)
            if t.subresource == "scale":
                if not isinstance(patched, dict):
                    raise bad_request("the patched Scale is not an object")
                return respond(await self._set_replicas(t, (patched.get("spec") or {}).get("replicas"),
                                                        (patched.get("metadata") or {}).get("resourceVersion", "")))
            obj = codec.to_object(patched, t.served, namespace=t.namespace, name=t.name)
            if _dry_run(request):   # kubectl diff: the answer is the object as it would be
                return respond(await self._dry_run_update(obj))
            if t.subresource != "status" and _no_op(t.served.kind.strategy.defaults(meta.copy(obj)), existing):
                # A patch that changes nothing is not written (no new resourceVersion, no watch
                # event), as Kubernetes skips a no-op update.
                return respond(printers.to_dict(existing))
            await _admit(request, "patch", t, obj)
            pinned = obj.metadata.resource_version != existing.metadata.resource_version
            write = self.registry.update_status if t.subresource in _STATUS_WRITES else self.registry.update
            try:
                return respond(printers.to_dict(await write(obj)))
            except st.Conflict:
                if pinned:   # the patch itself named a resourceVersion: its conflict is the caller's
                    raise
        raise st.Conflict("the object kept changing while the patch was applied; try again")

    async def _apply(self, request: web.Request, t: Target, body: Any) -> web.StreamResponse:
        """Server-side apply with field managers and conflicts (apply.py); the
        object it builds is written through the registry like any update."""
        manager = request.query.get("fieldManager", "")
        if not manager:
            raise bad_request("PATCH requests with apply content type must have a fieldManager query parameter")
        if not isinstance(body, dict):
            raise bad_request("the applied configuration must be an object")
        kind = t.served.kind
        for _ in range(_ATTEMPTS):
            try:
                existing: Message | None = await self.registry.get(kind, t.namespace, t.name)
            except st.NotFound:
                existing = None
            live = printers.to_dict(existing) if existing is not None else None
            try:
                merged = server_side_apply.apply(live, body, manager=manager, force=codec.flag(request.query, "force"))
            except server_side_apply.ApplyConflict as exc:
                raise ApiError(409, "Conflict", str(exc), {"name": t.name, "kind": t.served.qualified, "causes": [
                    {"reason": "FieldManagerConflict", "message": f'conflict with "{m}"', "field": f}
                    for m, f in exc.conflicts]}) from None
            obj = codec.to_object(merged, t.served, namespace=t.namespace, name=t.name)
            await _admit(request, "create" if existing is None else "patch", t, obj)
            if existing is None:
                try:
                    created = await self.registry.create(obj, dry_run=_dry_run(request))
                except st.AlreadyExists:
                    continue
                return respond(printers.to_dict(created), status=201)
            if _dry_run(request):
                return respond(await self._dry_run_update(obj))
            if _no_op(kind.strategy.defaults(meta.copy(obj)), existing):
                return respond(printers.to_dict(existing))
            obj.metadata.resource_version = existing.metadata.resource_version
            try:
                return respond(printers.to_dict(await self.registry.update(obj)))
            except st.Conflict:
                continue
        raise st.Conflict("the object kept changing while the configuration was applied; try again")

    async def delete(self, request: web.Request, t: Target) -> web.StreamResponse:
        options = await self._delete_options(request)
        existing = await self.registry.get(t.served.kind, t.namespace, t.name)
        pre = options.get("preconditions") or {}
        if pre.get("resourceVersion") and pre["resourceVersion"] != existing.metadata.resource_version:
            raise st.Conflict(f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                              f"ResourceVersion in object meta: {existing.metadata.resource_version}")
        if _dry_run(request) or options.get("dryRun") == ["All"]:
            return respond(printers.to_dict(existing))
        # The object as deletion left it: marked (graceful deletion, finalizers) or its last state;
        # client libraries read the answer as the kind (the Python client's V1Pod), kubectl either way.
        return respond(printers.to_dict(await self._delete_one(t, t.name, options)))

    async def delete_collection(self, request: web.Request, t: Target) -> web.StreamResponse:
        options = await self._delete_options(request)
        q = request.query
        items, revision = await self.registry.list(t.served.kind, t.namespace, label_selector=q.get("labelSelector", ""),
                                                   field_selector=q.get("fieldSelector", ""))
        gone = []
        for obj in items:
            try:
                gone.append(await self._delete_one(t, obj.metadata.name, options,
                                                   namespace=obj.metadata.namespace))
            except st.NotFound:
                continue
        kind = t.served.kind
        return respond({"kind": f"{kind.name}List", "apiVersion": kind.api_version,
                        "metadata": {"resourceVersion": revision}, "items": [printers.to_dict(o) for o in gone]})

    async def _delete_one(self, t: Target, name: str, options: dict[str, Any], *, namespace: str = "") -> Message:
        policy = options.get("propagationPolicy") or ""
        if not policy and options.get("orphanDependents") is True:
            policy = "Orphan"
        grace = options.get("gracePeriodSeconds")
        return await self.registry.delete(t.served.kind, namespace or t.namespace, name,
                                          grace_period_seconds=int(grace) if grace is not None else None,
                                          precondition_uid=(options.get("preconditions") or {}).get("uid") or "",
                                          propagation_policy=policy)

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        raw = await request.read()
        if raw.strip():
            parsed = codec.parse_body(raw, request.headers.get("Content-Type", JSON))
            if not isinstance(parsed, dict):
                raise bad_request("DeleteOptions must be a JSON object")
            options.update(parsed)
        q = request.query
        if "gracePeriodSeconds" in q:
            options["gracePeriodSeconds"] = codec.integer(q, "gracePeriodSeconds")
        if "propagationPolicy" in q:
            options["propagationPolicy"] = q["propagationPolicy"]
        if "orphanDependents" in q:
            options["orphanDependents"] = codec.flag(q, "orphanDependents")
        return options

    # ------------------------------------------------------------ eviction

    async def evict(self, request: web.Request, t: Target) -> web.StreamResponse:
        """POST pods/NAME/eviction: 201 Success once the pod is deleted (or marked),
        429 TooManyRequests while its disruption budget allows no disruption."""
        body = await self._body(request)
        if not isinstance(body, dict):
            raise bad_request("the body of an eviction must be a policy/v1 Eviction object")
        if body.get("kind") not in (None, "", "Eviction"):
            raise bad_request(f"the body of an eviction must be a policy/v1 Eviction, not {body.get('kind')}")
        named = (body.get("metadata") or {}).get("name")
        if named and named != t.name:
            raise bad_request("name in URL does not match name in Eviction object")
        options = body.get("deleteOptions") or {}
        if not isinstance(options, dict):
            raise bad_request("deleteOptions must be a JSON object")
        grace = options.get("gracePeriodSeconds")
        if grace is not None and not isinstance(grace, int):
            raise bad_request("deleteOptions.gracePeriodSeconds must be an integer")
        dry_run = _dry_run(request) or options.get("dryRun") == ["All"]
        await eviction.evict(self.registry, t.namespace, t.name, grace_period_seconds=grace,
                             precondition_uid=(options.get("preconditions") or {}).get("uid") or "",
                             dry_run=dry_run)
        return respond({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
                       status=201)

    # ------------------------------------------------------------ scale

    def _scale(self, obj: Message) -> dict[str, Any]:
        """autoscaling/v1 Scale of an object with spec.replicas and status.replicas."""
        data = printers.to_dict(obj)
        md = data.get("metadata", {})
        status = data.get("status", {})
        selector = obj.spec.selector
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                             if k in md},
                "spec": {"replicas": obj.spec.replicas},
                "status": {"replicas": status.get("replicas", 0),
                           # matchExpressions too: autoscalers find the pods by it
                           "selector": "" if labelselector.is_empty(selector) else labelselector.to_text(selector)}}

    async def _set_replicas(self, t: Target, replicas: Any, resource_version: str) -> dict[str, Any]:
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(422, "Invalid", f'Scale.autoscaling "{t.name}" is invalid: spec.replicas: Invalid value: '
                                           f'{replicas!r}: must be greater than or equal to 0',
                           {"name": t.name, "kind": "Scale", "causes": [
                               {"reason": "FieldValueInvalid", "message": "must be greater than or equal to 0",
                                "field": "spec.replicas"}]})
        for _ in range(_ATTEMPTS):
            existing = await self.registry.get(t.served.kind, t.namespace, t.name)
            if resource_version and resource_version != existing.metadata.resource_version:
                raise st.Conflict("the object has been modified; please apply your changes to the latest version "
                                  "and try again")
            changed = meta.copy(existing)
            changed.spec.replicas = replicas
            try:
                return self._scale(await self.registry.update(changed))
            except st.Conflict:
                if resource_version:
                    raise
        raise st.Conflict("the object kept changing while it was scaled; try again")

    # ------------------------------------------------------------ helpers

    async def _dry_run_update(self, obj: Message) -> dict[str, Any]:
        """An update checked as it would be written, and not written: the registry's
        dry-run apply (its update has no dry run), which validates, checks what may
        not change and keeps what the server owns, from an object that names every field."""
        merged, _ = await self.registry.apply(obj, dry_run=True)
        return printers.to_dict(merged)

    @staticmethod
    async def _body(request: web.Request) -> Any:
        return codec.parse_body(await request.read(), request.headers.get("Content-Type", JSON))


def _no_op(patched: Message, existing: Message) -> bool:
    """Whether writing `patched` over `existing` changes nothing an update may change:
    the registry's apply test (labels, annotations, spec) and the metadata others own."""
    a, b = patched.metadata, existing.metadata
    return (same_content(patched, existing) and list(a.finalizers) == list(b.finalizers)
            and list(a.owner_references) == list(b.owner_references))


def _dry_run(request: web.Request) -> bool:
    return request.query.get("dryRun") == "All"


def _patched(patch_type: str, current: dict[str, Any], patch: Any) -> Any:
    apply: dict[str, Callable[[Any, Any], Any]] = {
        "json": merge.json_patch, "merge": merge.json_merge_patch, "strategic": merge.strategic_merge_patch}
    try:
        return apply[patch_type](current, patch)
    except merge.PatchError as exc:
        raise ApiError(422, "Invalid", f"the patch could not be applied: {exc}") from None
    except (TypeError, AttributeError, KeyError) as exc:
        raise bad_request(f"the patch is malformed: {exc}") from None


def _check_list_options(rv: str, match: str, token: str) -> None:
    """Kubernetes' ValidateListOptions for resourceVersion, resourceVersionMatch and continue (422)."""
    causes = list_option_errors(rv, match, token)
    if causes:
        raise invalid("ListOptions.meta.k8s.io", "", causes)
