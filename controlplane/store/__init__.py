"""The control plane's storage layer: the Store protocol (interface.py), etcd
(etcd.py, the real one) and memory (memory.py, for FakeApiClient and tests)."""
from controlplane.store.etcd import Store
from controlplane.store.interface import (AlreadyExists, Compacted, Conflict, FutureRevision, InvalidRevision,
                                          NotFound, StoreError, StoreEvent, TooLarge, Unavailable)
from controlplane.store.memory import MemoryStore

EtcdStore = Store  # the name the docs use; `Store` stays for existing callers

__all__ = ["AlreadyExists", "Compacted", "Conflict", "EtcdStore", "FutureRevision", "InvalidRevision",
           "MemoryStore", "NotFound", "Store", "StoreError", "StoreEvent", "TooLarge", "Unavailable"]
