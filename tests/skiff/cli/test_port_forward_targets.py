"""`skiff port-forward svc/NAME|deploy/NAME|...`: which pod and which port in it,
as kubectl chooses them (over FakeApiClient: the real registry and kinds)."""
import asyncio

import pytest

from controlplane.testing import FakeApiClient
from proto.skiff.v1 import apps_pb2
from skiff.cli._common import CliError
from skiff.cli.port_forward import resolve
from tests.controlplane.controllers.test_endpointslice import pod, service


async def _with_pods(client, *pods):
    for p in pods:
        await client.create(p)
        stored = await client.get("Pod", p.metadata.name, "default")
        stored.status.CopyFrom(p.status)   # create resets status; written as an agent would
        await client.update_status(stored)


def test_a_service_picks_a_ready_pod_and_carries_the_service_port_to_its_target_port():
    async def body():
        c = FakeApiClient()
        await c.create(service("web", ports=(("http", 80, "web"), ("metrics", 9100, "9100"))))
        await _with_pods(c, pod("a-not-ready", "10.244.0.2", ready=False, ports=[("web", 8080)]),
                         pod("b-ready", "10.244.0.3", ports=[("web", 8081)]))
        return await resolve(c, "svc/web", "default", [(0, 80), (9000, 9100)])
    assert asyncio.run(body()) == ("b-ready", [(0, 80, 8081), (9000, 9100, 9100)])


def test_a_service_refusals_in_kubectls_words():
    async def body(target, ports, *objects):
        c = FakeApiClient()
        for obj in objects:
            await c.create(obj)
        await _with_pods(c, pod("a", "10.244.0.2", ports=[("web", 8080)]))
        return await resolve(c, target, "default", ports)
    with pytest.raises(CliError, match="Service web does not have a service port 81"):
        asyncio.run(body("svc/web", [(0, 81)], service("web", ports=(("", 80, "8080"),))))
    with pytest.raises(CliError, match="Pod 'a' does not have a named port 'grpc'"):
        asyncio.run(body("svc/web", [(0, 80)], service("web", ports=(("", 80, "grpc"),))))
    with pytest.raises(CliError, match="no pods found for services/none"):
        asyncio.run(body("svc/none", [(0, 80)], service("none", selector={"app": "none"})))
    with pytest.raises(CliError, match="Service is defined without a selector"):
        asyncio.run(body("svc/bare", [(0, 80)], service("bare", selector={})))


def test_a_deployment_forwards_to_one_of_its_pods_and_a_pod_name_as_typed():
    async def body():
        c = FakeApiClient()
        d = apps_pb2.Deployment()
        d.metadata.name, d.metadata.namespace = "web", "default"
        d.spec.replicas = 1
        d.spec.selector.match_labels["app"] = "web"
        d.spec.template.metadata.labels["app"] = "web"
        d.spec.template.spec.containers.add(name="c", image="busybox")
        await c.create(d)
        await _with_pods(c, pod("w1", "10.244.0.2"), pod("other", "10.244.0.3", labels={"app": "x"}))
        return (await resolve(c, "deploy/web", "default", [(0, 8080)]),
                await resolve(c, "w1", "default", [(5, 6)]), await resolve(c, "pod/w1", "default", [(5, 6)]))
    assert asyncio.run(body()) == (("w1", [(0, 8080, 8080)]), ("w1", [(5, 6, 6)]), ("w1", [(5, 6, 6)]))
