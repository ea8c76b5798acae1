"""`skiff taint nodes`, `cordon`, `uncordon` through the real CLI against a real
control plane: kubectl's messages, taints kept by key and effect, cordon
sets spec.unschedulable."""
from __future__ import annotations

import asyncio

import pytest

from proto.skiff.v1 import types_pb2
from skiff.client import ApiClient


def _node_taints(server: str, name: str):
    async def get():
        async with ApiClient(server) as c:
            return await c.get("Node", name)
    node = asyncio.run(get())
    return sorted(f"{t.key}={t.value}:{t.effect}" for t in node.spec.taints), node.spec.unschedulable


@pytest.mark.etcd
def test_taint_cordon_uncordon_as_kubectl(skiff, controlplane):
    async def make():
        async with ApiClient(controlplane) as c:
            n = types_pb2.Node()
            n.metadata.name = "n1"
            await c.create(n)
    asyncio.run(make())

    r = skiff("taint", "nodes", "n1", "dedicated=db:NoSchedule", "gpu:NoExecute", server=controlplane)
    assert (r.returncode, r.stdout) == (0, "node/n1 tainted\n"), r.stderr
    assert _node_taints(controlplane, "n1")[0] == ["dedicated=db:NoSchedule", "gpu=:NoExecute"]

    r = skiff("taint", "nodes", "n1", "dedicated=web:NoSchedule", server=controlplane)
    assert r.returncode == 1
    assert "node n1 already has dedicated taint(s) with same effect(s) and --overwrite is false" in r.stderr
    r = skiff("taint", "nodes", "n1", "dedicated=web:NoSchedule", "--overwrite", server=controlplane)
    assert (r.returncode, r.stdout) == (0, "node/n1 modified\n"), r.stderr

    r = skiff("taint", "nodes", "n1", "dedicated:NoSchedule-", server=controlplane)
    assert (r.returncode, r.stdout) == (0, "node/n1 untainted\n"), r.stderr
    r = skiff("taint", "nodes", "n1", "nothing-", server=controlplane)
    assert r.returncode == 1 and 'taint "nothing" not found' in r.stderr
    r = skiff("taint", "nodes", "n1", "k=v:Sometimes", server=controlplane)
    assert r.returncode == 1 and "invalid taint spec: k=v:Sometimes, unsupported taint effect" in r.stderr
    assert _node_taints(controlplane, "n1")[0] == ["gpu=:NoExecute"]

    r = skiff("cordon", "n1", server=controlplane)
    assert (r.returncode, r.stdout) == (0, "node/n1 cordoned\n"), r.stderr
    assert _node_taints(controlplane, "n1")[1] is True
    r = skiff("cordon", "n1", server=controlplane)
    assert r.stdout == "node/n1 already cordoned\n"
    r = skiff("uncordon", "n1", server=controlplane)
    assert (r.returncode, r.stdout) == (0, "node/n1 uncordoned\n"), r.stderr
    assert _node_taints(controlplane, "n1")[1] is False
    r = skiff("cordon", "missing", server=controlplane)
    assert r.returncode == 1 and 'nodes "missing" not found' in r.stderr
