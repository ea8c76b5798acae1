"""The signer `kubernetes.io/kube-apiserver-client-kubelet`, as
kube-controller-manager's csrsigning (issue 12, decision 36): an approved CSR
of that signer with no certificate yet gets one from the cluster CA
(`--cluster-signing-cert-file/--cluster-signing-key-file`), valid for the
shorter of its spec.expirationSeconds and `--cluster-signing-duration`. A
request the signer may not honour (a subject other than system:node:NAME in
system:nodes) is marked Failed with the reason; it is never signed.
"""
from __future__ import annotations

import datetime
import logging

from skiff import csr as csrs
from skiff.api.kinds.certificatesigningrequest import add_condition, condition
from skiff.client import ApiClient, Conflict, NotFound
from skiff.controller import Controller, Key, SharedInformerFactory
from skiff.pki import NODES, CertificateAuthority

log = logging.getLogger(__name__)


class CsrSigningController(Controller):
    name = "csrsigning"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory, ca: CertificateAuthority,
                 duration: datetime.timedelta) -> None:
        super().__init__(metrics=factory.metrics)
        self.client, self.ca, self.duration = client, ca, duration
        self.csrs = self.watch(factory.informer("CertificateSigningRequest"))

    async def reconcile(self, key: Key) -> float | None:
        obj = self.csrs.get(key)
        if (obj is None or obj.spec.signer_name != csrs.KUBELET_CLIENT_SIGNER or obj.status.certificate
                or not condition(obj, "Approved") or condition(obj, "Failed")):
            return None
        try:
            asked = csrs.request_identity(obj.spec.request)
            if not asked.user.startswith(csrs.NODE_PREFIX) or list(asked.groups) != [NODES]:
                raise csrs.CsrError(f"signer {csrs.KUBELET_CLIENT_SIGNER} issues only CN system:node:NAME "
                                    f"O system:nodes, not CN {asked.user!r}")
            duration = self.duration
            if obj.spec.HasField("expiration_seconds"):
                duration = min(duration, datetime.timedelta(seconds=obj.spec.expiration_seconds))
            signed = obj.__class__()
            signed.CopyFrom(obj)
            signed.status.certificate = csrs.sign(self.ca, obj.spec.request, usages=obj.spec.usages,
                                                  duration=duration)
        except csrs.CsrError as exc:
            signed = add_condition(obj, "Failed", "SignerValidationFailure", str(exc))
        try:
            await self.client.update_status(signed)
        except (Conflict, NotFound):
            return None
        log.info("certificatesigningrequest %s: %s", obj.metadata.name,
                 "issued" if signed.status.certificate else "failed")
        return None
