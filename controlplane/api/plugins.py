"""The admission plug-ins the API server runs, per kind (the registry's
AdmissionPlugin; Kubernetes' enabled admission plug-ins). A kind that needs
admission beyond its Strategy adds its plug-ins here, and nothing in the
registry names it."""
from __future__ import annotations

from typing import Any

from controlplane.api import priority


def default(registry: Any) -> dict[str, list[Any]]:
    """Kind name -> its plug-ins, in the order they run, over `registry`'s store and informers."""
    plugins: dict[str, list[Any]] = {}
    if priority.served():
        plugins["Pod"] = [priority.PodPriority(informers=registry.informers, store=registry.store)]
        plugins[priority.KIND] = [priority.OneDefaultClass(store=registry.store)]
    return plugins
