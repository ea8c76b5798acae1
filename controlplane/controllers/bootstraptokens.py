"""The two controllers of bootstrap tokens (issue 12, decision 36), as
kube-controller-manager's `tokencleaner` and `bootstrapsigner`:

  TokenCleaner      deletes a `bootstrap-token-<id>` Secret in kube-system once
                    its expiration has passed (and looks again at that moment).
  BootstrapSigner   keeps the `cluster-info` ConfigMap in kube-public: its
                    `kubeconfig` (the cluster CA and the API's addresses, written
                    when missing) and one `jws-kubeconfig-<id>` per valid token
                    marked for signing - none for an expired or deleted one, so a
                    joining machine with such a token finds no signature.

The ConfigMap is readable anonymously (the REST door's one anonymous endpoint
and the kubeadm role `kubeadm:bootstrap-signer-clusterinfo`, controlplane/bootstraprbac.py).
"""
from __future__ import annotations

import datetime
import logging
from typing import Callable

from proto.skiff.v1 import types_pb2
from skiff import bootstraptoken as bt
from skiff.api import meta
from skiff.client import AlreadyExists, ApiClient, Conflict, NotFound
from skiff.controller import Controller, Key, SharedInformerFactory

log = logging.getLogger(__name__)
Clock = Callable[[], datetime.datetime]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def tokens_of(secrets) -> list[bt.BootstrapToken]:
    out = []
    for s in secrets:
        if s.metadata.name.startswith(bt.SECRET_PREFIX) and s.type == bt.SECRET_TYPE:
            try:
                out.append(bt.from_secret(s.metadata.name, s.type, dict(s.data)))
            except bt.TokenError as exc:
                log.info("ignoring %s/%s: %s", bt.NAMESPACE, s.metadata.name, exc)
    return out


class TokenCleaner(Controller):
    name = "tokencleaner"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory, clock: Clock = _utcnow) -> None:
        super().__init__(metrics=factory.metrics)
        self.client, self.clock = client, clock
        self.secrets = self.watch(factory.informer("Secret", namespace=bt.NAMESPACE))

    async def reconcile(self, key: Key) -> float | None:
        secret = self.secrets.get(key)
        tokens = tokens_of([secret]) if secret is not None else []
        if not tokens or tokens[0].expiration is None:
            return None
        left = (tokens[0].expiration - self.clock()).total_seconds()
        if left > 0:
            return left
        try:
            await self.client.delete("Secret", secret.metadata.name, bt.NAMESPACE)
            log.info("deleted the expired bootstrap token %s", tokens[0].id)
        except NotFound:
            pass
        return None


def signed_data(kubeconfig: str, tokens: list[bt.BootstrapToken], now: datetime.datetime) -> dict[str, str]:
    """cluster-info's data: the kubeconfig and a detached JWS per valid signing token."""
    data = {"kubeconfig": kubeconfig}
    for t in tokens:
        if "signing" in t.usages and not t.expired(now):
            data[bt.JWS_PREFIX + t.id] = bt.detached_signature(kubeconfig, t.id, t.secret)
    return data


class BootstrapSigner(Controller):
    name = "bootstrapsigner"
    _KEY = (bt.CLUSTER_INFO_NAMESPACE, bt.CLUSTER_INFO)

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory, kubeconfig: str,
                 clock: Clock = _utcnow) -> None:
        super().__init__(metrics=factory.metrics)
        self.client, self.kubeconfig, self.clock = client, kubeconfig, clock
        self.secrets = self.uses(factory.informer("Secret", namespace=bt.NAMESPACE))
        self.info = self.uses(factory.informer("ConfigMap", namespace=bt.CLUSTER_INFO_NAMESPACE,
                                               field_selector=f"metadata.name={bt.CLUSTER_INFO}"))
        for informer in (self.secrets, self.info):
            informer.add_handler(lambda _key: self.enqueue(self._KEY))
        self.enqueue(self._KEY)

    async def reconcile(self, key: Key) -> float | None:
        now = self.clock()
        tokens = tokens_of(self.secrets.list())
        current = self.info.get(self._KEY)
        kubeconfig = current.data.get("kubeconfig") if current is not None else None
        wanted = signed_data(kubeconfig or self.kubeconfig, tokens, now)
        if current is not None and dict(current.data) == wanted:
            pass
        elif current is None:
            cm = types_pb2.ConfigMap(api_version="v1", kind="ConfigMap", data=wanted)
            cm.metadata.name, cm.metadata.namespace = bt.CLUSTER_INFO, bt.CLUSTER_INFO_NAMESPACE
            try:
                await self.client.create(cm)
            except AlreadyExists:
                return 0.5
        else:
            updated = meta.copy(current)
            updated.data.clear()
            updated.data.update(wanted)
            try:
                await self.client.update(updated)
            except (Conflict, NotFound):
                return 0.5
        # Look again when the next signing token expires (its signature goes).
        expiries = [(t.expiration - now).total_seconds() for t in tokens
                    if t.expiration is not None and not t.expired(now)]
        return min(expiries) + 0.1 if expiries else None
