"""The API's errors: RpcAbort (how handlers and the agent proxy end a call with a
chosen gRPC code) and the registry's own, Invalid and Forbidden, beside the
store's (NotFound, AlreadyExists, Conflict, Compacted, Unavailable)."""
from __future__ import annotations

import grpc


class RpcAbort(Exception):
    """Raised inside a handler to end the call with `code`; `field_path`
    goes to trailing metadata `skiff-field-path` (INVALID_ARGUMENT)."""

    def __init__(self, code: grpc.StatusCode, message: str, *, field_path: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.field_path = code, message, field_path


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
