"""The CLI's own error type, apart from `_common` so that `main` can name it
without importing the gRPC client (a build or an image command never needs it)."""
from __future__ import annotations


class CliError(Exception):
    """A user-facing failure; the message is printed as one line after `error: `."""
