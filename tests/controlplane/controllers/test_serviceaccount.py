"""The serviceaccounts controller (controlplane/controllers/serviceaccount.py): `default`
and kube-root-ca.crt in every namespace, put back when deleted or edited."""
from __future__ import annotations

import asyncio

from controlplane.controllers.serviceaccount import ROOT_CA_CONFIGMAP, ServiceAccountsController
from controlplane.testing import FakeApiClient, eventually, running
from proto.skiff.v1 import types_pb2
from skiff.client import NotFound
from skiff.controller import SharedInformerFactory

CA = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"


def test_default_account_and_root_ca_in_every_namespace_and_back_when_deleted():
    async def body():
        c = FakeApiClient()
        factory = SharedInformerFactory(c)
        controller = ServiceAccountsController(client=c, factory=factory, ca_pem=CA)

        async def has(kind: str, namespace: str, name: str):
            try:
                return await c.get(kind, name, namespace)
            except NotFound:
                return None

        async with running(controller, factory=factory):
            await eventually(lambda: has("ServiceAccount", "default", "default"), what="default/default")
            await eventually(lambda: has("ServiceAccount", "kube-system", "default"), what="kube-system/default")
            ns = types_pb2.Namespace()
            ns.metadata.name = "shop"
            await c.create(ns)
            await eventually(lambda: has("ServiceAccount", "shop", "default"), what="shop/default")
            cm = await eventually(lambda: has("ConfigMap", "shop", ROOT_CA_CONFIGMAP), what="root CA")
            assert dict(cm.data) == {"ca.crt": CA}
            first = (await c.get("ServiceAccount", "default", "shop")).metadata.uid
            await c.delete("ServiceAccount", "default", "shop")
            again = await eventually(lambda: has("ServiceAccount", "shop", "default"), what="re-created")
            assert again.metadata.uid != first
            cm.data["ca.crt"] = "edited"
            await c.update(cm)

            async def restored():
                got = await has("ConfigMap", "shop", ROOT_CA_CONFIGMAP)
                return got is not None and got.data["ca.crt"] == CA
            await eventually(restored, what="root CA put back")
    asyncio.run(body())


def test_without_a_ca_no_configmap():
    async def body():
        c = FakeApiClient()
        factory = SharedInformerFactory(c)
        async def default_account():
            return [sa for sa in (await c.list("ServiceAccount", "default"))[0]]
        async with running(ServiceAccountsController(client=c, factory=factory), factory=factory):
            await eventually(default_account, what="default/default")
            await asyncio.sleep(0.2)
            names = [cm.metadata.name for cm in (await c.list("ConfigMap", "default"))[0]]
            assert ROOT_CA_CONFIGMAP not in names
    asyncio.run(body())
