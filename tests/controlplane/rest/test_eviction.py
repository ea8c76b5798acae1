"""The eviction subresource on a real control plane (etcd, the disruption
controller): POST .../pods/NAME/eviction as kubectl drain sends it, and the
gRPC Evict the CLI uses - allowed while the budget has disruptions to spend,
429 with Kubernetes' message and cause when not, 500 for two budgets."""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from skiff.api.convert import to_object
from skiff.client import ApiClient, NotFound, TooManyRequests
from tests.fake_kubelet import kubelet

pytestmark = [pytest.mark.etcd, pytest.mark.slow]


def _post(rest, url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with rest.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _eviction(name: str) -> dict:
    return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}}


def _pod(name: str, app: str):
    return to_object({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
                      "spec": {"containers": [{"name": "c", "image": "busybox"}]}})


def _budget(name: str, app: str, **spec):
    return to_object({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
                      "spec": {"selector": {"matchLabels": {"app": app}}, **spec}})


async def _allowed(c: ApiClient, name: str, allowed: int, healthy: int) -> None:
    for _ in range(300):
        s = (await c.get("PodDisruptionBudget", name)).status
        if s.observed_generation >= 1 and (s.disruptions_allowed, s.current_healthy) == (allowed, healthy):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name}: never {allowed} allowed with {healthy} healthy; last {s}")


def test_evictions_spend_the_budget_then_429(rest):
    url = f"{rest.url}/api/v1/namespaces/default/pods"

    async def body():
        async with rest.info.client() as c:
            for name in ("web-1", "web-2", "web-3", "solo"):
                await c.create(_pod(name, "web" if name.startswith("web") else "solo"))
            await c.create(_budget("web-pdb", "web", minAvailable=2))
            await _allowed(c, "web-pdb", 1, 3)

            # Allowed: 201 Success, the pod is gone (unbound: nothing to stop), the budget spent.
            status, answer = await asyncio.to_thread(_post, rest, f"{url}/web-1/eviction", _eviction("web-1"))
            assert (status, answer["status"]) == (201, "Success"), answer
            with pytest.raises(NotFound):
                await c.get("Pod", "web-1")

            # Refused: 429 TooManyRequests, Kubernetes' message and the DisruptionBudget cause.
            status, answer = await asyncio.to_thread(_post, rest, f"{url}/web-2/eviction", _eviction("web-2"))
            assert (status, answer["reason"]) == (429, "TooManyRequests"), answer
            assert answer["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
            [cause] = answer["details"]["causes"]
            assert cause["reason"] == "DisruptionBudget"
            assert cause["message"].startswith("The disruption budget web-pdb needs 2 healthy pods and has ")
            with pytest.raises(TooManyRequests, match="would violate the pod's disruption budget"):
                await c.evict("web-2")
            assert (await c.get("Pod", "web-2")).metadata.name == "web-2"   # still there
            await _allowed(c, "web-pdb", 0, 2)

            # A pod no budget selects goes; a name in the body unlike the URL's is a 400.
            status, answer = await asyncio.to_thread(_post, rest, f"{url}/solo/eviction", _eviction("other"))
            assert (status, answer["message"]) == (400, "name in URL does not match name in Eviction object")
            await c.evict("solo")
            with pytest.raises(NotFound):
                await c.get("Pod", "solo")

            # Two budgets over one pod: 500, as Kubernetes answers.
            await c.create(_budget("web-pdb-2", "web", maxUnavailable="0"))
            status, answer = await asyncio.to_thread(_post, rest, f"{url}/web-2/eviction", _eviction("web-2"))
            assert (status, answer["reason"]) == (500, "InternalError"), answer
            assert "more than one PodDisruptionBudget" in answer["message"]

    with kubelet(rest.info.client):
        asyncio.run(asyncio.wait_for(body(), 90))


def test_kubectl_lists_budgets_with_its_columns(rest, tmp_path):
    manifest = tmp_path / "pdb.yaml"
    manifest.write_text("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: zk-pdb}\n"
                        "spec:\n  maxUnavailable: 1\n  selector: {matchLabels: {app: zookeeper}}\n")
    applied = rest.kubectl("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    table = rest.kubectl("get", "pdb").stdout.splitlines()
    assert table[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    assert table[1].split()[:4] == ["zk-pdb", "N/A", "1", "0"]
    resources = rest.kubectl("api-resources", "--api-group=policy").stdout
    assert "poddisruptionbudgets" in resources and "pdb" in resources
