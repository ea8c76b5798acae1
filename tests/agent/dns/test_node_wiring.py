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
