"""The API's errors: RpcAbort (how handlers and the agent proxy end a call with a
chosen gRPC code) and the registry's own, Invalid and Forbidden, beside the
store's (NotFound, AlreadyExists, Conflict, Compacted, Unavailable).

`status_of` is the one table from these errors to gRPC codes: service.py answers
with it, and FakeApiClient raises the client exception skiff.client makes of
that code, so the fake and the server cannot disagree on an error.
"""
from __future__ import annotations

import grpc

from controlplane.api.inflight import Overloaded
from controlplane.store import interface as st
from skiff.api.kinds import UnknownKind
from skiff.api.selectors import SelectorError


class RpcAbort(Exception):
    """Raised inside a handler to end the call with `code`; `field_path`
    goes to trailing metadata `skiff-field-path` (INVALID_ARGUMENT)."""

    def __init__(self, code: grpc.StatusCode, message: str, *, field_path: str = "", retry_after: int = 0) -> None:
        super().__init__(message)
        self.code, self.message, self.field_path, self.retry_after = code, message, field_path, retry_after


class Invalid(Exception):
    """The object (or request) breaks a rule; `field_path` names the field
    ("spec.containers[0].image"). The service answers INVALID_ARGUMENT."""

    def __init__(self, message: str, field_path: str = "") -> None:
        super().__init__(message)
        self.message, self.field_path = message, field_path


class Forbidden(Exception):
    """A request refused for the state of the cluster, not the object's content
    (Kubernetes' 403: new content in a namespace being terminated)."""


class TooManyRequests(Exception):
    """Refused for now, fine later (Kubernetes' 429): an eviction a disruption
    budget does not allow yet. `causes`: (type, message) pairs, as a Status's
    details.causes. The service answers RESOURCE_EXHAUSTED."""

    def __init__(self, message: str, *, causes: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.message, self.causes = message, causes


class InternalError(Exception):
    """A request the API cannot serve for the state it finds (Kubernetes' 500
    InternalError, as for a pod covered by two disruption budgets)."""


_STORE_CODES: dict[type[st.StoreError], grpc.StatusCode] = {
    st.NotFound: grpc.StatusCode.NOT_FOUND,
    st.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    st.Conflict: grpc.StatusCode.ABORTED,
    st.Compacted: grpc.StatusCode.OUT_OF_RANGE,         # the client raises Gone: list again
    st.Unavailable: grpc.StatusCode.UNAVAILABLE,
    st.TooLarge: grpc.StatusCode.INVALID_ARGUMENT,
    st.InvalidRevision: grpc.StatusCode.INVALID_ARGUMENT,
    st.FutureRevision: grpc.StatusCode.OUT_OF_RANGE,    # the client lists again, as after Gone
}


def status_of(exc: Exception) -> RpcAbort | None:
    """The gRPC code and message the API answers `exc` with; None when it is
    not one of the API's errors (a bug: the server answers INTERNAL)."""
    if isinstance(exc, RpcAbort):
        return exc
    if isinstance(exc, st.StoreError):
        # The nearest class listed: the watch cache's Expired is a Compacted.
        code = next((_STORE_CODES[c] for c in type(exc).__mro__ if c in _STORE_CODES), grpc.StatusCode.INTERNAL)
        return RpcAbort(code, str(exc))
    if isinstance(exc, Invalid):
        return RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, exc.message, field_path=exc.field_path)
    if isinstance(exc, Forbidden):
        return RpcAbort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
    if isinstance(exc, TooManyRequests):
        return RpcAbort(grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message)
    if isinstance(exc, Overloaded):   # the max-in-flight limit: the client retries after a second
        return RpcAbort(grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message, retry_after=exc.retry_after)
    if isinstance(exc, InternalError):
        return RpcAbort(grpc.StatusCode.INTERNAL, str(exc))
    if isinstance(exc, UnknownKind):
        return RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, str(exc), field_path="kind")
    if isinstance(exc, SelectorError):
        return RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    return None
