"""Import a package's submodules without running the package's __init__ up front.

Some libraries' top-level `__init__` imports everything they have: pyroute2's
pulls in ~230 modules (IPDB, NDB with sqlite3, wireguard, nl80211, plan9, ...)
and prometheus_client's pulls http.server, urllib.request, email, ssl and
wsgiref. The agent uses a few submodules of each (pyroute2.iproute.linux,
prometheus_client.metrics), but `import pyroute2.iproute.linux` runs the
package's __init__ first, which costs the resident agent ~6 MiB for pyroute2
and ~3.5 MiB for prometheus_client (docs/architecture.md, "agent memory").

`package(name)` puts a module object for `name` into sys.modules that has the
package's real spec and __path__, so submodules import as usual (also `from pyroute2 import config`),
but whose __init__ runs only when something asks the package itself for a name
that is not a submodule (`from pyroute2 import NDB`, `pyroute2.IPRoute`): then it runs once, in
place, and the package is whole. So other code in the process that wants the
full package still gets it; it only pays when it does.
"""
from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType

_lock = threading.RLock()


def package(name: str) -> ModuleType:
    """The package `name`, its submodules importable, its __init__ deferred (see above)."""
    with _lock:
        module = sys.modules.get(name)
        if module is not None:
            return module  # already imported (whole, or deferred by an earlier call)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError(f"{name} is not an installed package", name=name)
        module = importlib.util.module_from_spec(spec)

        def __getattr__(attr: str):
            # A submodule (`from pyroute2 import config`): import just that one.
            full = f"{name}.{attr}"
            if full in sys.modules:  # being imported right now (a circular import)
                return sys.modules[full]
            if not attr.startswith("__") and importlib.util.find_spec(full) is not None:
                return importlib.import_module(full)
            # The package's own namespace is wanted: run its __init__ now, once.
            with _lock:
                if module.__dict__.get("__getattr__") is __getattr__:
                    del module.__dict__["__getattr__"]
                    try:
                        spec.loader.exec_module(module)
                    except BaseException:
                        module.__dict__["__getattr__"] = __getattr__
                        raise
            return getattr(module, attr)  # an AttributeError now is the package's own answer

        module.__getattr__ = __getattr__
        sys.modules[name] = module
        return module
