"""RpcAbort: how handlers (and the agent proxy) end a call with a chosen gRPC code."""
from __future__ import annotations

import grpc


class RpcAbort(Exception):
    """Raised inside a handler to end the call with `code`; `field_path`
    goes to trailing metadata `skiff-field-path` (INVALID_ARGUMENT)."""

    def __init__(self, code: grpc.StatusCode, message: str, *, field_path: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.field_path = code, message, field_path
