"""The informer's cache and its read side: an indexed store of one kind, and
the `Lister` controllers read through.

Objects are kept by key `(namespace, name)` (namespace "" for cluster-scoped
kinds), with secondary indexes that map a value to the keys having it:

    namespace   metadata.namespace
    label       "k=v" for every label
    owner       metadata.ownerReferences[].uid (who depends on owner X?)
    nodeName    spec.nodeName (the pods bound to node X), for kinds that have it

Objects handed out are the cache's own messages: READ-ONLY. Protobuf cannot
freeze them, so it is a rule: copy (`skiff.api.meta.copy`) before changing one,
or the next reader - and the next diff against the store - sees the change.
"""
from __future__ import annotations

from typing import Callable, Iterable

from google.protobuf.message import Message

from skiff.api.selectors import parse_label_selector

Key = tuple[str, str]
IndexFunc = Callable[[Message], Iterable[str]]

NAMESPACE_INDEX = "namespace"
LABEL_INDEX = "label"
OWNER_INDEX = "owner"
NODE_NAME_INDEX = "nodeName"


def key_of(obj: Message) -> Key:
    return obj.metadata.namespace, obj.metadata.name


def key_text(key: Key) -> str:
    """"namespace/name", or "name" for a cluster-scoped object (for logs)."""
    return "/".join(part for part in key if part)


def _namespace(obj: Message) -> Iterable[str]:
    return (obj.metadata.namespace,)


def _labels(obj: Message) -> Iterable[str]:
    return (f"{k}={v}" for k, v in obj.metadata.labels.items())


def _owners(obj: Message) -> Iterable[str]:
    refs = getattr(obj.metadata, "owner_references", ())
    return (ref.uid for ref in refs if ref.uid)


def _node_name(obj: Message) -> Iterable[str]:
    spec = getattr(obj, "spec", None)
    node = getattr(spec, "node_name", "") if spec is not None else ""
    return (node,) if node else ()


DEFAULT_INDEXES: dict[str, IndexFunc] = {
    NAMESPACE_INDEX: _namespace, LABEL_INDEX: _labels, OWNER_INDEX: _owners, NODE_NAME_INDEX: _node_name,
}


class Indexer:
    """The cache: objects by key plus the secondary indexes. Written only by
    the informer (one task), read by anyone."""

    def __init__(self, indexes: dict[str, IndexFunc] | None = None) -> None:
        self._funcs = dict(DEFAULT_INDEXES if indexes is None else indexes)
        self._items: dict[Key, Message] = {}
        self._index: dict[str, dict[str, set[Key]]] = {name: {} for name in self._funcs}

    def add_index(self, name: str, func: IndexFunc) -> None:
        self._funcs[name] = func
        self._index[name] = {}
        for key, obj in self._items.items():
            for value in func(obj):
                self._index[name].setdefault(value, set()).add(key)

    def _unindex(self, key: Key, obj: Message) -> None:
        for name, func in self._funcs.items():
            for value in func(obj):
                keys = self._index[name].get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._index[name][value]

    def put(self, key: Key, obj: Message) -> Message | None:
        """Store obj; returns what was there before."""
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, func in self._funcs.items():
            for value in func(obj):
                self._index[name].setdefault(value, set()).add(key)
        return old

    def pop(self, key: Key) -> Message | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def get(self, key: Key) -> Message | None:
        return self._items.get(key)

    def keys(self) -> list[Key]:
        return list(self._items)

    def values(self) -> list[Message]:
        return list(self._items.values())

    def by_index(self, name: str, value: str) -> list[Message]:
        if name not in self._index:
            raise KeyError(f"no index {name!r}; indexes: {', '.join(sorted(self._index))}")
        return [self._items[k] for k in sorted(self._index[name].get(value, ()))]

    def __len__(self) -> int:
        return len(self._items)


class Lister:
    """Read-only view of an informer's cache (see the module docstring: copy
    before changing anything it returns)."""

    def __init__(self, indexer: Indexer) -> None:
        self._indexer = indexer

    def get(self, key: Key) -> Message | None:
        return self._indexer.get(key)

    def get_named(self, namespace: str, name: str) -> Message | None:
        return self._indexer.get((namespace, name))

    def keys(self) -> list[Key]:
        return self._indexer.keys()

    def list(self, namespace: str | None = None, *, label_selector: str = "") -> list[Message]:
        """Objects (in `namespace` if given) whose labels match the selector."""
        items = (self._indexer.by_index(NAMESPACE_INDEX, namespace) if namespace is not None
                 else self._indexer.values())
        if label_selector:
            selector = parse_label_selector(label_selector)
            items = [o for o in items if selector.matches(o.metadata.labels)]
        return items

    def by_index(self, index: str, value: str) -> list[Message]:
        return self._indexer.by_index(index, value)

    def with_label(self, key: str, value: str) -> list[Message]:
        return self._indexer.by_index(LABEL_INDEX, f"{key}={value}")

    def owned_by(self, owner_uid: str) -> list[Message]:
        """The dependents of the owner with this uid (metadata.ownerReferences)."""
        return self._indexer.by_index(OWNER_INDEX, owner_uid)

    def on_node(self, node_name: str) -> list[Message]:
        """The objects whose spec.nodeName is node_name (pods bound there)."""
        return self._indexer.by_index(NODE_NAME_INDEX, node_name)

    def __len__(self) -> int:
        return len(self._indexer)
