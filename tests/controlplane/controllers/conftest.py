"""Helpers for the workload controllers' tests over FakeApiClient."""
from __future__ import annotations

import asyncio

import pytest

from skiff.api import meta


class FakeKubelet:
    """Stands in for the agents: marks the pods it is told about Running and
    Ready (as a kubelet would once their containers start)."""

    def __init__(self, client) -> None:
        self.client = client

    async def ready(self, *, select=lambda pod: True, now: float | None = None) -> int:
        pods, _ = await self.client.list("Pod")
        done = 0
        for pod in pods:
            if pod.metadata.HasField("deletion_timestamp") or not select(pod):
                continue
            cond = meta.get_condition(pod.status.conditions, "Ready")
            if cond is not None and cond.status == "True":
                continue
            pod.status.phase = "Running"
            meta.set_condition(pod.status.conditions, type_="Ready", status="True", now=meta.timestamp(now))
            try:
                await self.client.update_status(pod)
                done += 1
            except Exception:  # deleted or changed meanwhile: the next round sees it
                pass
        return done

    async def keep_ready(self, *, select=lambda pod: True, interval: float = 0.01) -> None:
        while True:
            await self.ready(select=select)
            await asyncio.sleep(interval)


@pytest.fixture
def kubelet_class():
    return FakeKubelet
