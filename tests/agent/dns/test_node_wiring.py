"""The pod workers take a pod's resolv.conf and Service variables from the node's DNS (agent.dns.node)."""
from __future__ import annotations

import asyncio

from agent.podworkers import PodWorkers
from tests.agent.test_podworkers import World


def test_sandbox_gets_the_resolv_conf_and_containers_the_service_variables(tmp_path):
    async def scenario():
        w = World(tmp_path)
        w.workers = PodWorkers(node_name="node-1", node_ip="10.0.0.5", pods=w.api, client=w.client,
                               runtime=w.runtime, images=w.images, pods_dir=w.pods_dir, pids_limit=100,
                               clock=w.clock,
                               resolv_conf=lambda pod: f"nameserver 10.244.0.1\nsearch {pod.metadata.namespace}.svc\n",
                               service_env=lambda pod: {"WEB_SERVICE_HOST": "10.96.0.20"})
        pod = w.api.add_pod("hello")
        await w.workers.reconcile(pod.metadata.uid)
        config = w.runtime.sandbox_configs[pod.metadata.uid]
        assert config.resolv_conf == "nameserver 10.244.0.1\nsearch default.svc\n"
        container = w.runtime.containers[w.current(pod.metadata.uid).id].config
        assert dict(container.env)["WEB_SERVICE_HOST"] == "10.96.0.20"
    asyncio.run(scenario())


def _pod():
    from proto.skiff.v1 import types_pb2
    pod = types_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = "p", "shop"
    return pod


def test_node_dns_serves_and_writes_its_address_and_falls_back_when_it_cannot_bind(tmp_path):
    import socket

    import dns.asyncquery
    import dns.message
    import dns.rcode

    from agent.dns.node import DnsSettings, NodeDns
    from controlplane.testing import FakeApiClient
    from skiff.controller import SharedInformerFactory

    host_resolv = tmp_path / "resolv.conf"
    host_resolv.write_text("nameserver 192.0.2.53\n")

    async def scenario():
        factory = SharedInformerFactory(FakeApiClient())
        serving = NodeDns(informers=factory, settings=DnsSettings(port=0), host_resolv_path=str(host_resolv))
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        refused = NodeDns(informers=factory, settings=DnsSettings(port=taken.getsockname()[1]),
                          host_resolv_path=str(host_resolv))
        factory.start()
        try:
            await serving.start("127.0.0.1")
            await refused.start("127.0.0.1")
            assert serving.resolv_conf(_pod()).startswith("nameserver 127.0.0.1\nsearch shop.svc.cluster.local ")
            response = await dns.asyncquery.udp(dns.message.make_query("nope.shop.svc.cluster.local", "A"),
                                                "127.0.0.1", port=serving.server.address[1], timeout=5)
            assert response.rcode() == dns.rcode.NXDOMAIN
            # Port taken: no DNS on this node, ClusterFirst pods get the node's resolvers.
            assert refused.server is None
            assert refused.resolv_conf(_pod()) == "nameserver 192.0.2.53\n"
        finally:
            await serving.stop()
            await refused.stop()
            taken.close()
            await factory.stop()
    asyncio.run(scenario())
