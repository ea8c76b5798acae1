"""metav1.Status: how the REST front door reports errors, as Kubernetes does.

Every failure a handler meets ends here: the registry's and the store's
exceptions (the same ones the gRPC service maps to status codes) become a
Status body with Kubernetes' `reason` and HTTP `code`, so kubectl prints
`Error from server (NotFound): pods "nope" not found` and client libraries
raise their usual exceptions.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import grpc

from controlplane import store as st
from controlplane.api.errors import Forbidden, InternalError, Invalid, RpcAbort, TooManyRequests
from skiff.api import kinds
from skiff.api.convert import ConversionError
from skiff.api.merge import PatchError

log = logging.getLogger(__name__)


@dataclass
class ApiError(Exception):
    """An answer that is not the object: a Status with `code` and `reason`."""
    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, Any]:
        return status_body(code=self.code, reason=self.reason, message=self.message, details=self.details)


def status_body(*, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Success" if code < 400 else "Failure", "message": message,
                            "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 with one cause per (field path, message), as Kubernetes' field errors."""
    text = "; ".join(f"{path}: {msg}" if path else msg for path, msg in causes)
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {text}',
                    {"name": name, "kind": kind,
                     "causes": [{"reason": "FieldValueInvalid", "message": msg, "field": path}
                                for path, msg in causes]})


_RPC_CODES = {
    grpc.StatusCode.NOT_FOUND: (404, "NotFound"),
    grpc.StatusCode.INVALID_ARGUMENT: (400, "BadRequest"),
    grpc.StatusCode.FAILED_PRECONDITION: (400, "BadRequest"),
    grpc.StatusCode.UNAVAILABLE: (503, "ServiceUnavailable"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "Forbidden"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "AlreadyExists"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "TooManyRequests"),
}


def from_exception(exc: BaseException, *, resource: str = "", name: str = "") -> ApiError:
    """The Status for an exception raised by the registry, the store, the agent
    proxy or the conversions; `resource` ("pods", "deployments.apps") and
    `name` make the messages Kubernetes'."""
    if isinstance(exc, ApiError):
        return exc
    details = {"name": name, "kind": resource} if name else {}
    if isinstance(exc, st.NotFound):
        # The store names the kind ('Pod "x" in namespace "y"'); Kubernetes names the
        # resource. Namespace admission's own message ('namespaces "y" not found') stays.
        if name and resource and not str(exc).startswith("namespaces "):
            return not_found(resource, name)
        return ApiError(404, "NotFound", str(exc), details)
    if isinstance(exc, st.AlreadyExists):
        message = f'{resource} "{name}" already exists' if resource and name else str(exc)
        return ApiError(409, "AlreadyExists", message, details)
    if isinstance(exc, st.Conflict):
        message = (f'Operation cannot be fulfilled on {resource} "{name}": {exc}' if resource and name
                   else str(exc))
        return ApiError(409, "Conflict", message, details)
    if isinstance(exc, st.Compacted):
        # The watch cache's list errors are Kubernetes' sentences already (`verbatim`).
        return ApiError(410, "Expired", str(exc) if getattr(exc, "verbatim", False)
                        else f"too old resource version: {exc}")
    if isinstance(exc, st.FutureRevision):
        return ApiError(504, "Timeout", f"Too large resource version: {exc}",
                        {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                         "retryAfterSeconds": 1})
    if isinstance(exc, st.InvalidRevision):
        return bad_request(str(exc))
    if isinstance(exc, st.TooLarge):
        return ApiError(413, "RequestEntityTooLarge", str(exc))
    if isinstance(exc, st.Unavailable):
        return ApiError(503, "ServiceUnavailable", str(exc))
    if isinstance(exc, Invalid):
        return ApiError(422, "Invalid", exc.message,
                        {**details, "causes": [{"reason": "FieldValueInvalid", "message": exc.message,
                                                "field": exc.field_path}]})
    if isinstance(exc, Forbidden):
        return ApiError(403, "Forbidden", str(exc), details)
    if isinstance(exc, TooManyRequests):
        return ApiError(429, "TooManyRequests", exc.message,
                        {**details, "causes": [{"reason": reason, "message": message} for reason, message in exc.causes]})
    if isinstance(exc, InternalError):
        return ApiError(500, "InternalError", f"Internal error occurred: {exc}",
                        {**details, "causes": [{"message": str(exc)}]})
    if isinstance(exc, (ConversionError, PatchError)):
        return ApiError(422, "Invalid", str(exc), details)
    if isinstance(exc, kinds.UnknownKind):
        return bad_request(str(exc))
    if isinstance(exc, RpcAbort):
        code, reason = _RPC_CODES.get(exc.code, (500, "InternalError"))
        return ApiError(code, reason, exc.message)
    log.exception("internal error")
    return ApiError(500, "InternalError", f"Internal error occurred: {type(exc).__name__}: {exc}")
