"""CertificateSigningRequest's strategy (decision 36): Kubernetes' validation wording, the spec
immutable, Approved/Denied exclusive and never removed, kubectl's columns."""
from __future__ import annotations

import datetime

from proto.skiff.v1 import certificates_pb2
from skiff import csr as csrs
from skiff.api import kinds
from skiff.api.kinds.certificatesigningrequest import add_condition

KIND = kinds.kind_named("CertificateSigningRequest")
S = KIND.strategy


def _csr(**spec) -> certificates_pb2.CertificateSigningRequest:
    obj = certificates_pb2.CertificateSigningRequest()
    obj.metadata.name = "node-csr-1"
    _, request = csrs.node_key_and_request("n1")
    obj.spec.request = spec.pop("request", request)
    obj.spec.signer_name = spec.pop("signer_name", csrs.KUBELET_CLIENT_SIGNER)
    obj.spec.usages[:] = spec.pop("usages", ["digital signature", "client auth"])
    for k, v in spec.items():
        setattr(obj.spec, k, v)
    return S.defaults(obj)


def _errors(obj) -> list[str]:
    return [str(e) for e in S.validate(obj)]


def test_a_valid_request():
    assert _errors(_csr()) == []
    assert KIND.resource == "certificatesigningrequests" and not KIND.namespaced
    assert kinds.kind_for_resource("csr") is KIND


def test_errors_name_the_field():
    assert _errors(_csr(request=b"garbage")) == [
        "spec.request: Invalid value: []byte{...}: not a PEM certificate request (CERTIFICATE REQUEST)"]
    assert _errors(_csr(signer_name="")) == ["spec.signerName: Required value"]
    assert "spec.signerName: Invalid value" in _errors(_csr(signer_name="no-slash"))[0]
    assert _errors(_csr(usages=["client auth", "flying"])) == ['spec.usages[1]: Unsupported value: "flying"']
    assert _errors(_csr(expiration_seconds=60)) == [
        "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds"]


def test_the_spec_is_immutable_and_a_decision_final():
    old = _csr()
    new = _csr()
    assert "spec: field is immutable" in [str(e) for e in S.validate_update(old, new)]
    approved = add_condition(old, "Approved", "AutoApproved", "ok")
    assert S.validate_update(approved, approved) == []
    both = add_condition(approved, "Denied", "KubectlDeny", "no")
    assert ("status.conditions: Invalid value: Approved and Denied conditions are mutually exclusive"
            in [str(e) for e in S.validate_update(approved, both)])
    assert ("status.conditions: Forbidden: updates may not remove a condition of type 'Approved'"
            in [str(e) for e in S.validate_update(approved, old)])


def test_kubectl_columns():
    obj = _csr(expiration_seconds=3600)
    S.requested_by(obj, user="system:bootstrap:abcdef", groups=("system:bootstrappers",))
    now = datetime.datetime.now(datetime.timezone.utc)
    obj.metadata.creation_timestamp.FromDatetime(now - datetime.timedelta(seconds=5))
    assert S.columns(wide=False) == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    assert S.row(obj, wide=False, now=now) == ["node-csr-1", "5s", csrs.KUBELET_CLIENT_SIGNER,
                                               "system:bootstrap:abcdef", "60m", "Pending"]
    issued = add_condition(obj, "Approved", "AutoApproved", "ok")
    issued.status.certificate = b"-----BEGIN CERTIFICATE-----"
    assert S.row(issued, wide=False, now=now)[-1] == "Approved,Issued"
