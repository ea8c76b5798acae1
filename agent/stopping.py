"""How a node's pod side stops, the same for the agent (app.py) and a hollow
node (hollow.py): its background tasks (heartbeat, resync, ...) cancelled and
awaited, then the pod workers shut down - without touching containers, which
outlive the agent. Each caller then stops what it alone has (DNS, servers,
informers, its client)."""
from __future__ import annotations

import asyncio
from typing import Protocol


class _Workers(Protocol):
    async def shutdown(self) -> None: ...


async def stop_tasks_and_workers(tasks: list[asyncio.Task], workers: _Workers | None) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if workers is not None:
        await workers.shutdown()
