"""The CSR cleaner, as kube-controller-manager's csrcleaner (decision 41):
CertificateSigningRequests do not pile up.

  - approved, denied or failed: deleted 1 h after that condition (its lastUpdateTime);
  - pending (no condition): deleted 24 h after its creation;
  - issued: deleted once its certificate has expired (even within that hour).

Kubernetes polls every hour; this controller requeues each CSR for its own
deadline instead, so one is gone at it. `deadline` is pure; the clock
(seconds since the epoch) is injected for tests.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from google.protobuf.message import Message

from skiff import csr as csrs
from skiff.api import meta
from skiff.client import ApiClient, Conflict, NotFound
from skiff.controller import Controller, Key, SharedInformerFactory

log = logging.getLogger(__name__)
DECIDED_TTL = 3600.0        # Kubernetes' approvedExpiration, deniedExpiration, failedExpiration
PENDING_TTL = 24 * 3600.0   # pendingExpiration


def deadline(obj: Message) -> tuple[float, str]:
    """(when the CSR is to be deleted, seconds since the epoch; why)."""
    times: list[tuple[float, str]] = []
    for c in obj.status.conditions:
        if c.type in ("Approved", "Denied", "Failed") and c.status == "True":
            times.append((meta.seconds(c.last_update_time) + DECIDED_TTL, f"{c.type.lower()} more than 1h ago"))
    if not times:
        times.append((meta.seconds(obj.metadata.creation_timestamp) + PENDING_TTL, "pending for more than 24h"))
    if obj.status.certificate:
        try:
            _, not_after = csrs.certificate_lifetime(obj.status.certificate)
            times.append((not_after.timestamp(), "its certificate has expired"))
        except ValueError:
            pass   # not a certificate: the condition's hour decides
    return min(times)


class CsrCleaner(Controller):
    name = "csrcleaner"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(metrics=factory.metrics)
        self.client, self.clock = client, clock
        self.csrs = self.watch(factory.informer("CertificateSigningRequest"))

    async def reconcile(self, key: Key) -> float | None:
        obj = self.csrs.get(key)
        if obj is None:
            return None
        when, why = deadline(obj)
        left = when - self.clock()
        if left > 0:
            return left
        try:
            await self.client.delete("CertificateSigningRequest", obj.metadata.name, "",
                                     precondition_uid=obj.metadata.uid)
            log.info("deleted certificatesigningrequest %s: %s", obj.metadata.name, why)
        except (NotFound, Conflict):   # gone, or another one of that name since
            pass
        return None
