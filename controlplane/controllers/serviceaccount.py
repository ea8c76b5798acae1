"""The serviceaccounts controller and the root-CA publisher (Kubernetes'
serviceaccounts-controller and root-ca-cert-publisher), decision 35.

For every namespace that is not being deleted:
  - a ServiceAccount `default` (re-created if deleted), so pods that name
    none have an account to run as;
  - with a cluster CA (secure mode), a ConfigMap `kube-root-ca.crt` holding it
    as `ca.crt` (re-created if deleted, put back if edited): what the pods'
    token volume projects as /var/run/secrets/kubernetes.io/serviceaccount/ca.crt.

Keyed by namespace name; a change of either object in a namespace, or of the
namespace, enqueues it. Level-triggered: reconcile compares the listers' view
with what should be and writes only the difference.
"""
from __future__ import annotations

import grpc
from google.protobuf.message import Message

from proto.skiff.v1 import types_pb2
from skiff.api import meta
from skiff.api.kinds import serviceaccount
from skiff.client import AlreadyExists, ApiClient, ApiError, Conflict, NotFound
from skiff.controller import Controller, EventHandler, Key, SharedInformerFactory

ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
_DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
                "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
                "guaranteed across distributions of Kubernetes clusters.")


def root_ca_configmap(namespace: str, ca_pem: str) -> types_pb2.ConfigMap:
    cm = types_pb2.ConfigMap(api_version="v1", kind="ConfigMap", data={ROOT_CA_KEY: ca_pem})
    cm.metadata.name, cm.metadata.namespace = ROOT_CA_CONFIGMAP, namespace
    cm.metadata.annotations["kubernetes.io/description"] = _DESCRIPTION
    return cm


class ServiceAccountsController(Controller):
    name = "serviceaccounts"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory, ca_pem: str = "") -> None:
        super().__init__(metrics=factory.metrics)
        self.client, self.ca_pem = client, ca_pem
        self.namespaces = self.uses(factory.informer("Namespace"))
        self.namespaces.add_handler(lambda key: self.enqueue(key[1]))
        self.accounts = self._by_namespace(factory.informer("ServiceAccount"))
        self.configmaps = self._by_namespace(factory.informer("ConfigMap")) if ca_pem else None

    def _by_namespace(self, informer):
        def changed(key: Key, *objs: Message) -> None:
            self.enqueue(key[0])
        informer.add_event_handler(EventHandler(on_add=changed, on_update=changed, on_delete=changed))
        return self.uses(informer)

    async def reconcile(self, namespace: str) -> float | None:
        ns = self.namespaces.get(("", namespace))
        if ns is None or ns.metadata.HasField("deletion_timestamp") or ns.status.phase == "Terminating":
            return None
        if self.accounts.get((namespace, serviceaccount.DEFAULT_NAME)) is None:
            await self._create(serviceaccount.new(namespace))
        if self.configmaps is not None:
            wanted = root_ca_configmap(namespace, self.ca_pem)
            cm = self.configmaps.get((namespace, ROOT_CA_CONFIGMAP))
            if cm is None:
                await self._create(wanted)
            elif dict(cm.data) != dict(wanted.data):
                fixed = meta.copy(cm)
                fixed.data.clear()
                fixed.data.update(wanted.data)
                try:
                    await self.client.update(fixed)
                except (Conflict, NotFound):
                    self.enqueue(namespace)
        return None

    async def _create(self, obj: Message) -> None:
        try:
            await self.client.create(obj)
        except AlreadyExists:
            pass   # made meanwhile
        except ApiError as exc:
            if exc.code != grpc.StatusCode.PERMISSION_DENIED:   # the namespace is being deleted: nothing to do
                raise
