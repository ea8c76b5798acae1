"""The control plane's storage layer (etcd); see etcd.py."""
from controlplane.store.etcd import (AlreadyExists, Compacted, Conflict, NotFound, Store, StoreError,
                                     StoreEvent, Unavailable)

__all__ = ["AlreadyExists", "Compacted", "Conflict", "NotFound", "Store", "StoreError", "StoreEvent",
           "Unavailable"]
