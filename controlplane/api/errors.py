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
