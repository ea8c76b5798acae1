"""The controller kit shared by the control plane and the agent: informers shared
per process, indexed listers, a rate-limited work queue and the Controller base.
See docs/architecture.md ("The API machinery") and each module's docstring."""
from skiff.controller.controller import Controller, EventRecorder, PermanentError, controller_of
from skiff.controller.informer import (DEFAULT_RESYNC_SECONDS, EventHandler, Informer, ListWatcher,
                                       SharedInformerFactory)
from skiff.controller.lister import (LABEL_INDEX, NAMESPACE_INDEX, NODE_NAME_INDEX, OWNER_INDEX, Indexer, Key,
                                    Lister, key_of, key_text)
from skiff.controller.metrics import ControllerMetrics
from skiff.controller.workqueue import ShutDown, WorkQueue

__all__ = ["Controller", "ControllerMetrics", "DEFAULT_RESYNC_SECONDS", "EventHandler", "EventRecorder",
           "Indexer", "Informer", "Key", "LABEL_INDEX", "ListWatcher", "Lister", "NAMESPACE_INDEX",
           "NODE_NAME_INDEX", "OWNER_INDEX", "PermanentError", "SharedInformerFactory",
           "ShutDown", "WorkQueue", "controller_of", "key_of", "key_text"]
