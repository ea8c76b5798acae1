"""CertificateSigningRequest (certificates.k8s.io/v1), issue 12, decision 36.

A client (a joining node with a bootstrap token, a node renewing its
certificate, a user) asks for a certificate from a named signer. The API
server writes who asked into spec.username/uid/groups from the credential
(`requested_by`; whatever the client put there is replaced); the spec is then
immutable. Approval is a condition (Approved or Denied, never both, never
removed) set by `skiff certificate approve|deny` / `kubectl certificate
approve|deny` or the auto-approver (controlplane/controllers/csrapproving.py);
the signer (controlplane/controllers/csrsigning.py) then fills
status.certificate. Checks and wording as Kubernetes' ValidateCertificateSigningRequest.
"""
from __future__ import annotations

import re
from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import certificates_pb2
from skiff import csr
from skiff.api import describing, humanize, meta
from skiff.api.kinds.strategy import DescribeContext, Kind, Strategy, getter
from skiff.api.validation import FieldError

GROUP = "certificates.k8s.io"
CONDITION_TYPES = ("Approved", "Denied", "Failed")
MIN_EXPIRATION_SECONDS = 600
_SIGNER = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def condition(obj: Message, type_: str) -> Message | None:
    return next((c for c in obj.status.conditions if c.type == type_ and c.status == "True"), None)


def add_condition(obj: Message, type_: str, reason: str, message: str) -> Message:
    """A copy of `obj` with a new True condition (what an approver, a person or the signer writes)."""
    out = meta.copy(obj)
    now = meta.timestamp()
    c = out.status.conditions.add(type=type_, status="True", reason=reason, message=message)
    c.last_update_time.CopyFrom(now)
    c.last_transition_time.CopyFrom(now)
    return out


def state(obj: Message) -> str:
    """kubectl's CONDITION column: Approved,Issued / Denied / Failed / Pending."""
    parts = [t for t in CONDITION_TYPES if condition(obj, t) is not None]
    if obj.status.certificate:
        parts.append("Issued")
    return ",".join(parts) or "Pending"


class CsrStrategy(Strategy):
    immutable_fields = ("spec",)

    def requested_by(self, obj: Message, *, user: str, groups: tuple[str, ...], uid: str = "") -> None:
        obj.spec.username, obj.spec.uid = user, uid or ""
        obj.spec.groups[:] = list(groups)

    def prepare_create(self, obj: Message) -> Message:
        super().prepare_create(obj)
        obj.ClearField("status")
        return obj

    def prepare_status_update(self, old: Message, new: Message) -> Message:
        """The status (and approval) writes: a condition without times keeps the stored one's, or gets now,
        as Kubernetes defaults them (kubectl's protobuf body carries none here)."""
        result = super().prepare_status_update(old, new)
        now = meta.timestamp()
        before = {c.type: c for c in old.status.conditions}
        for c in result.status.conditions:
            was = before.get(c.type)
            if was is not None and not c.last_update_time.seconds and (was.status, was.reason) == (c.status, c.reason):
                c.last_update_time.CopyFrom(was.last_update_time)
                c.last_transition_time.CopyFrom(was.last_transition_time)
            if not c.last_update_time.seconds:
                c.last_update_time.CopyFrom(now)
            if not c.last_transition_time.seconds:
                c.last_transition_time.CopyFrom(now)
        return result

    def validate(self, obj: Message) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj.spec
        if not spec.request:
            errors.append(FieldError("spec.request", "Required value"))
        else:
            try:
                csr.load(spec.request)
            except csr.CsrError as exc:
                errors.append(FieldError("spec.request", f"Invalid value: []byte{{...}}: {exc}"))
        if not spec.signer_name:
            errors.append(FieldError("spec.signerName", "Required value"))
        elif not _SIGNER.match(spec.signer_name):
            errors.append(FieldError("spec.signerName", f'Invalid value: "{spec.signer_name}": must be a fully '
                                                       'qualified domain and path of the form "example.com/signer-name"'))
        if spec.HasField("expiration_seconds") and spec.expiration_seconds < MIN_EXPIRATION_SECONDS:
            errors.append(FieldError("spec.expirationSeconds", f"Invalid value: {spec.expiration_seconds}: may not "
                                                              f"specify a duration less than {MIN_EXPIRATION_SECONDS} seconds"))
        if not spec.usages:
            errors.append(FieldError("spec.usages", "Required value"))
        for i, usage in enumerate(spec.usages):
            if usage not in csr.KNOWN_USAGES:
                errors.append(FieldError(f"spec.usages[{i}]", f'Unsupported value: "{usage}"'))
        return errors + self._status_errors(obj)

    def _status_errors(self, obj: Message) -> list[FieldError]:
        errors = []
        seen: set[str] = set()
        for i, c in enumerate(obj.status.conditions):
            if not c.type:
                errors.append(FieldError(f"status.conditions[{i}].type", "Required value"))
            elif c.type in seen and c.type in CONDITION_TYPES:
                errors.append(FieldError(f"status.conditions[{i}].type", f'Duplicate value: "{c.type}"'))
            seen.add(c.type)
            if c.status not in ("True", "False", "Unknown"):
                errors.append(FieldError(f"status.conditions[{i}].status",
                                         f'Unsupported value: "{c.status}": supported values: "False", "True", '
                                         '"Unknown"'))
        if condition(obj, "Approved") is not None and condition(obj, "Denied") is not None:
            errors.append(FieldError("status.conditions", "Invalid value: Approved and Denied conditions are "
                                                          "mutually exclusive"))
        return errors

    def validate_update(self, old: Message, new: Message) -> list[FieldError]:
        errors = super().validate_update(old, new)
        for type_ in ("Approved", "Denied"):
            if condition(old, type_) is not None and condition(new, type_) is None:
                errors.append(FieldError("status.conditions", f"Forbidden: updates may not remove a condition of "
                                                              f"type {type_!r}"))
        if old.status.certificate and new.status.certificate != old.status.certificate:
            errors.append(FieldError("status.certificate", "Forbidden: updates may not modify existing "
                                                           "certificate content"))
        return errors + self._status_errors(new)

    @property
    def field_selectors(self):
        return {**super().field_selectors, "spec.signerName": getter("spec", "signer_name")}

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        requested = (humanize.duration(obj.spec.expiration_seconds) if obj.spec.HasField("expiration_seconds")
                     else "<none>")
        return [obj.metadata.name, humanize.age(obj.metadata.creation_timestamp, now=now), obj.spec.signer_name,
                obj.spec.username, requested, state(obj)]

    def describe(self, obj: Message, ctx: DescribeContext) -> str:
        text = describing.Text()
        describing.header(text, obj)
        text.multiline("CreationTimestamp", describing.ts(obj.metadata.creation_timestamp))
        text.multiline("Requesting User", obj.spec.username)
        text.multiline("Signer", obj.spec.signer_name)
        text.multiline("Status", state(obj))
        try:
            asked = csr.request_identity(obj.spec.request)
            text.line("Subject:")
            text.kv(2, [("Common Name", asked.user), ("Serial Number", ""),
                        ("Organization", ", ".join(asked.groups))])
        except csr.CsrError:
            pass
        describing.events(text, ctx.events, now=ctx.now)
        return str(text)


KIND = Kind("CertificateSigningRequest", f"{GROUP}/v1", "certificatesigningrequests", "certificate_signing_request",
            certificates_pb2.CertificateSigningRequest, False, ("certificatesigningrequest", "csr"),
            strategy=CsrStrategy())
