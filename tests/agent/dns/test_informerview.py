"""The resolver over real informers (FakeApiClient's store): Services and EndpointSlices as
written through the API are answered, and a change is seen by the next query."""
from __future__ import annotations

import asyncio

import dns.message
import dns.rcode
from agent.dns import Resolver
from agent.dns.informerview import InformerView, service_info
from agent.envvars import service_env
from controlplane.testing import FakeApiClient
from skiff.api import manifest
from skiff.controller import SharedInformerFactory

OBJECTS = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.20
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-abc
  namespace: default
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
ports: [{name: pg, protocol: TCP, port: 5432}]
endpoints:
- addresses: [10.244.1.5]
  hostname: db-0
  conditions: {ready: true}
- addresses: [10.244.1.6]
  conditions: {ready: false}
"""


def _answers(resolver: Resolver, name: str, rdtype: str = "A") -> tuple[int, list[str]]:
    response = resolver.resolve(dns.message.make_query(name, rdtype))
    return response.rcode(), sorted(r.to_text() for rrset in response.answer for r in rrset)


def test_answers_follow_the_informer_caches():
    async def scenario():
        api = FakeApiClient()
        for doc in manifest.parse_text(OBJECTS, source="objects.yaml"):
            assert doc.ok, [str(e) for e in doc.errors]
            await api.create(doc.obj)
        factory = SharedInformerFactory(api)
        services, slices = factory.informer("Service"), factory.informer("EndpointSlice")
        view = InformerView(services=services, slices=slices)
        factory.start()
        await factory.wait_synced()
        try:
            resolver = Resolver(view=view)
            assert _answers(resolver, "web.default.svc.cluster.local") == (dns.rcode.NOERROR, ["10.96.0.20"])
            assert _answers(resolver, "db.default.svc.cluster.local") == (dns.rcode.NOERROR, ["10.244.1.5"])
            assert _answers(resolver, "db-0.db.default.svc.cluster.local") == (dns.rcode.NOERROR, ["10.244.1.5"])
            assert _answers(resolver, "20.0.96.10.in-addr.arpa", "PTR") == (
                dns.rcode.NOERROR, ["web.default.svc.cluster.local."])
            env = service_env([service_info(s) for s in services.list()], namespace="default",
                              enable_service_links=True)
            assert env["WEB_SERVICE_HOST"] == "10.96.0.20" and "DB_SERVICE_HOST" not in env

            await api.delete("Service", "web", namespace="default")
            for _ in range(100):
                if services.get(("default", "web")) is None:
                    break
                await asyncio.sleep(0.05)
            assert _answers(resolver, "web.default.svc.cluster.local")[0] == dns.rcode.NXDOMAIN
            assert resolver.resolve(dns.message.make_query("20.0.96.10.in-addr.arpa", "PTR")) is None
        finally:
            await factory.stop()
    asyncio.run(scenario())
