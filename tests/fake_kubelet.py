"""A stand-in kubelet for tests that run a control plane without an agent:
it marks pods Running and Ready through the API, as a kubelet would."""
from __future__ import annotations

import asyncio
import contextlib
import threading

from typing import Callable

from skiff.api import meta
from skiff.client import ApiClient


@contextlib.contextmanager
def kubelet(server: str | Callable[[], ApiClient]):
    """Marks every pod in "default" Running and Ready while the block runs. `server`: the API's
    address, or what makes a client with credentials for it (ControlPlaneInfo.client)."""
    stop = threading.Event()

    async def loop():
        async with (ApiClient(server) if isinstance(server, str) else server()) as c:
            while not stop.is_set():
                pods, _ = await c.list("Pod", "default")
                for pod in pods:
                    cond = meta.get_condition(pod.status.conditions, "Ready")
                    if pod.metadata.HasField("deletion_timestamp") or (cond is not None and cond.status == "True"):
                        continue
                    pod.status.phase = "Running"
                    meta.set_condition(pod.status.conditions, type_="Ready", status="True")
                    with contextlib.suppress(Exception):
                        await c.update_status(pod)
                await asyncio.sleep(0.1)

    thread = threading.Thread(target=asyncio.run, args=(loop(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
