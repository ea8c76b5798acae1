"""The building blocks of validation: FieldError, name rules (RFC 1123) and
the metadata checks every kind shares. Pure functions, no I/O.

A kind's own rules live in its strategy (skiff/api/kinds/<kind>.py), and
`skiff.api.kinds.validate(obj)` runs them: every problem as a FieldError whose
`path` uses the manifest's (Kubernetes JSON) names, e.g.
"spec.containers[0].resources.limits.memory". The API server rejects an object
with any error (INVALID_ARGUMENT, the first path in trailing metadata); the
CLI runs the same function before sending and adds the file, document index
and line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from google.protobuf.message import Message


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def dns1123_label_error(value: str) -> str | None:
    if not value:
        return "required"
    if len(value) > 63:
        return f"{value!r}: must be no more than 63 characters"
    if not _DNS1123_LABEL.match(value):
        return (f"{value!r}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                f"or '-', and must start and end with an alphanumeric character")
    return None


def dns1123_subdomain_error(value: str) -> str | None:
    if not value:
        return "required"
    if len(value) > 253:
        return f"{value!r}: must be no more than 253 characters"
    if not _DNS1123_SUBDOMAIN.match(value):
        return (f"{value!r}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                f"characters, '-' or '.', and must start and end with an alphanumeric character")
    return None


def validate_metadata(obj: Message) -> list[FieldError]:
    """The checks on metadata every kind shares."""
    errors: list[FieldError] = []
    meta = obj.metadata
    # Nodes and pods are named like DNS subdomains in Kubernetes.
    if not meta.name and meta.generate_name:
        pass  # the server fills the name
    elif problem := dns1123_subdomain_error(meta.name):
        errors.append(FieldError("metadata.name", problem))
    if meta.namespace and (problem := dns1123_label_error(meta.namespace)):
        errors.append(FieldError("metadata.namespace", problem))
    for key, value in meta.labels.items():
        if not _LABEL_VALUE.match(value) or len(value) > 63:
            errors.append(FieldError(f"metadata.labels.{key}",
                                     f"{value!r}: a label value must be 63 characters or less, "
                                     f"alphanumeric, '-', '_' or '.', starting and ending alphanumeric"))
    return errors


def validate(obj: Message) -> list[FieldError]:
    """Every problem in `obj` by its kind's rules: `skiff.api.kinds.validate`,
    kept under this name for its callers."""
    from skiff.api import kinds  # the kind files import this module: resolve at call time
    return kinds.validate(obj)
