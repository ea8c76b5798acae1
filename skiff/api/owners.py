"""The rules on metadata.ownerReferences and metadata.finalizers every kind
shares (Kubernetes' ValidateOwnerReferences and ValidateFinalizers), run by
the generic Strategy.validate. Pure functions, no I/O.

An owner reference must name its owner fully (apiVersion, kind, name, uid:
the garbage collector finds the owner by kind and name and trusts it only
with that uid), an object has at most one controller, and the owner must be
of a kind Skiff serves and able to own the dependent: a cluster-scoped object
cannot be owned by a namespaced one (it has no namespace to find it in).
A finalizer name is a standard one (`kubernetes`, `orphan`,
`foregroundDeletion`) or fully qualified (`example.com/hold`).
"""
from __future__ import annotations

from google.protobuf.message import Message

from skiff.api.validation import FieldError, invalid_value, qualified_name_error

ORPHAN = "orphan"
FOREGROUND_DELETION = "foregroundDeletion"
STANDARD_FINALIZERS = ("kubernetes", ORPHAN, FOREGROUND_DELETION)
BANNED_OWNERS = ("Event",)   # as Kubernetes: an Event never owns anything


def owner_reference_errors(obj: Message, *, namespaced: bool) -> list[FieldError]:
    from skiff.api import kinds  # the kind files import this module: resolve at call time
    errors: list[FieldError] = []
    controllers = []
    for i, ref in enumerate(obj.metadata.owner_references):
        path = f"metadata.ownerReferences[{i}]"
        for field, value, what in (("apiVersion", ref.api_version, "version"), ("kind", ref.kind, "kind"),
                                   ("name", ref.name, "name"), ("uid", ref.uid, "uid")):
            if not value:
                errors.append(FieldError(f"{path}.{field}", f"{what} must not be empty"))
        if ref.controller:
            controllers.append(ref.name)
        if not ref.kind:
            continue
        try:
            owner = kinds.kind_named(ref.kind)
        except kinds.UnknownKind:
            errors.append(FieldError(f"{path}.kind", f"{invalid_value(ref.kind, 'not a kind Skiff serves')} "
                                                     f"(skiff api-resources lists them)"))
            continue
        if owner.name in BANNED_OWNERS:
            errors.append(FieldError(path, f"{owner.api_version}, Kind={owner.name} is disallowed from being "
                                           f"an owner"))
        elif ref.api_version and ref.api_version != owner.api_version:
            errors.append(FieldError(f"{path}.apiVersion", invalid_value(
                ref.api_version, f"kind {owner.name} is served as {owner.api_version}")))
        elif owner.namespaced and not namespaced:
            errors.append(FieldError(path, f"a cluster-scoped object cannot be owned by a namespaced "
                                           f"{owner.name} ({ref.name})"))
    if len(controllers) > 1:
        errors.append(FieldError("metadata.ownerReferences",
                                 "Only one reference can have Controller set to true. Found \"true\" in "
                                 f"references for {' and '.join(controllers)}"))
    return errors


def finalizer_errors(obj: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    finalizers = list(obj.metadata.finalizers)
    for i, name in enumerate(finalizers):
        path = f"metadata.finalizers[{i}]"
        if problem := qualified_name_error(name):
            errors.append(FieldError(path, invalid_value(name, problem)))
        elif "/" not in name and name not in STANDARD_FINALIZERS:
            errors.append(FieldError(path, invalid_value(
                name, "name is neither a standard finalizer name nor is it fully qualified")))
    if ORPHAN in finalizers and FOREGROUND_DELETION in finalizers:
        errors.append(FieldError("metadata.finalizers",
                                 f"finalizer {ORPHAN} and {FOREGROUND_DELETION} cannot be both set"))
    return errors
