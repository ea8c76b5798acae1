"""The gRPC side of authentication and authorization (controlplane/auth.py):
each `Api` method and its request mapped to Kubernetes' request attributes
(verb, API group, resource, subresource, namespace, name), checked before the
method runs. Streams that say what they are about in their first message
(Exec, Attach, PortForward) are checked on that message.
"""
from __future__ import annotations

import logging
from typing import Any

import grpc

from controlplane.auth import REQUESTER, Attributes, Guard, Unauthenticated
from skiff.api import kinds

log = logging.getLogger(__name__)
_ORIGIN = (("skiff-origin", "apiserver"),)
_VERBS = {"Get": "get", "List": "list", "Watch": "watch", "Create": "create", "Apply": "patch",
          "Update": "update", "UpdateStatus": "update", "Delete": "delete"}
_POD_SUBRESOURCES = {"Bind": ("create", "binding"), "Evict": ("create", "eviction"), "Logs": ("get", "log"),
                     "Exec": ("create", "exec"), "Attach": ("create", "attach"),
                     "PortForward": ("create", "portforward")}


def _kind(name: str) -> kinds.Kind | None:
    for lookup in (kinds.kind_named, kinds.kind_for_resource):
        try:
            return lookup(name)
        except kinds.UnknownKind:
            continue
    return None


def _of_kind(verb: str, kind: kinds.Kind | None, namespace: str, name: str, subresource: str = "") -> Attributes:
    if kind is None:   # an unknown kind: the method answers INVALID_ARGUMENT once allowed to
        return Attributes(verb=verb, resource="unknown", namespace=namespace, name=name)
    group = kind.api_version.rpartition("/")[0]
    return Attributes(verb=verb, resource=kind.resource, subresource=subresource, api_group=group,
                      namespace=namespace if kind.namespaced else "", name=name)


def attributes(method: str, request: Any) -> Attributes:
    """What `method` with `request` does, for the authorizer."""
    if method in _POD_SUBRESOURCES:
        verb, sub = _POD_SUBRESOURCES[method]
        where = request.start if method in ("Exec", "Attach", "PortForward") else request
        return Attributes(verb=verb, resource="pods", subresource=sub, namespace=where.namespace or "default",
                          name=where.name)
    if method == "AccessReview":   # about oneself: anyone authenticated (system:basic-user); another: impersonate
        return Attributes(verb="impersonate", resource="users", name=request.user) if request.user else \
            Attributes(verb="create", resource="selfsubjectaccessreviews", api_group="authorization.k8s.io")
    if method == "CreateToken":
        return Attributes(verb="create", resource="serviceaccounts", subresource="token",
                          namespace=request.namespace or "default", name=request.name)
    if method == "Stats":
        return Attributes(verb="get", resource="nodes", subresource="stats", name=request.node_name)
    verb = _VERBS.get(method, method.lower())
    if hasattr(request, "object"):   # Create, Apply, Update, UpdateStatus
        try:
            obj = kinds.unwrap(request.object)
            kind = kinds.kind_of(obj)
        except (ValueError, kinds.UnknownKind):
            return Attributes(verb=verb, resource="unknown")
        namespace = obj.metadata.namespace or ("default" if kind.namespaced else "")
        return _of_kind(verb, kind, namespace, obj.metadata.name if method != "Create" else "",
                        "status" if method == "UpdateStatus" else "")
    if hasattr(request, "key"):      # Get, Delete
        return _of_kind(verb, _kind(request.key.kind), request.key.namespace, request.key.name)
    # List, Watch: one object by `metadata.name=X` names it (the node authorizer reads that, as Kubernetes').
    return _of_kind(verb, _kind(request.kind), request.namespace, selected_name(request.field_selector))


def selected_name(field_selector: str) -> str:
    """X of a field selector that is exactly `metadata.name=X` (or ==X); else ""."""
    key, op, value = field_selector.partition("==") if "==" in field_selector else field_selector.partition("=")
    return value.strip() if op and key.strip() == "metadata.name" and "," not in value else ""


def grpc_guard(guard: Guard):
    """The `guard` of skiff.grpcdecoding.add_servicer: aborts UNAUTHENTICATED or PERMISSION_DENIED."""
    async def check(method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        try:
            identity = await guard.authenticator.grpc_request(context)
        except Unauthenticated as exc:
            log.info("unauthorized %s from %s: %s", method, context.peer(), exc)
            context.set_trailing_metadata(_ORIGIN)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"Unauthorized: {exc}")
        REQUESTER.set(identity)
        wanted = attributes(method, request)
        if wanted.resource == "selfsubjectaccessreviews":
            return   # every authenticated user may ask what they may do, as Kubernetes' system:basic-user
        message = await guard.check(identity, wanted)
        if message is None and guard.admission is not None and method in _WRITES:
            message = await _admit(guard, identity, wanted, request)
        if message is not None:
            context.set_trailing_metadata(_ORIGIN)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)
    return check


_WRITES = ("Create", "Apply", "Update", "UpdateStatus")


async def _admit(guard: Guard, identity, wanted: Attributes, request: Any) -> str | None:
    """Admission with the requester (controlplane/requestadmission.py); what it fills in goes into the request."""
    try:
        obj = kinds.unwrap(request.object)
    except (ValueError, kinds.UnknownKind):
        return None   # the method answers INVALID_ARGUMENT
    message = await guard.admit(identity, wanted, obj)
    if message is None:
        request.object.CopyFrom(kinds.wrap(obj))
    return message
