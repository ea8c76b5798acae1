"""Kubernetes' Priority admission, over the registry's store:

    Pod create   spec.priorityClassName -> spec.priority (the class's value) and
                 spec.preemptionPolicy (the class's, unless the pod sets one); no name: the
                 global default class, else 0; an unknown name is refused (403) with
                 Kubernetes' words "no PriorityClass with name X was found"; a spec.priority
                 that differs from the class's value is refused as Kubernetes refuses it
    Pod update   the priority stays what admission computed (a manifest applied again omits it)
    PriorityClass create/update   at most one globalDefault

The built-in system-cluster-critical and system-node-critical classes are
created at start (`bootstrap`), as the API server does.
"""
from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from controlplane.api.errors import Forbidden
from controlplane.store.interface import AlreadyExists, NotFound
from skiff.api import kinds
from skiff.api.kinds.priorityclass import SYSTEM_CLASSES, system_class


async def bootstrap(create: Any) -> None:
    """Create the system classes (idempotent); `create` is the registry's create."""
    if not _served():
        return
    for name in SYSTEM_CLASSES:
        try:
            await create(system_class(name))
        except AlreadyExists:
            pass


def _served() -> bool:
    try:
        kinds.kind_named("PriorityClass")
        return True
    except kinds.UnknownKind:
        return False


async def admit(store: Any, obj: Message) -> None:
    """At create."""
    if not _served():
        return
    kind = kinds.kind_of(obj)
    if kind.name == "PriorityClass":
        await _one_default(store, obj)
    elif kind.name == "Pod":
        await _pod(store, obj)


def keep(obj: Message, old: Message) -> None:
    """At update: a pod keeps the priority admission gave it (its spec is immutable)."""
    if kinds.kind_of(obj).name != "Pod":
        return
    spec = obj.spec
    if not spec.HasField("priority") and old.spec.HasField("priority"):
        spec.priority = old.spec.priority
    if not spec.HasField("preemption_policy") and old.spec.HasField("preemption_policy"):
        spec.preemption_policy = old.spec.preemption_policy
    if not spec.priority_class_name:
        spec.priority_class_name = old.spec.priority_class_name


async def _classes(store: Any) -> list[Message]:
    classes, _ = await store.list(kinds.kind_named("PriorityClass"))
    return classes


async def _one_default(store: Any, pc: Message) -> None:
    if not pc.global_default:
        return
    for other in await _classes(store):
        if other.global_default and other.metadata.name != pc.metadata.name:
            raise Forbidden(f'priorityclasses.scheduling.k8s.io "{pc.metadata.name}" is forbidden: '
                            f"PriorityClass {other.metadata.name} is already marked as default. "
                            f"Only one default can exist")


async def _pod(store: Any, pod: Message) -> None:
    spec = pod.spec
    name = spec.priority_class_name
    pc = None
    if name:
        try:
            pc = await store.get(kinds.kind_named("PriorityClass"), "", name)
        except NotFound:
            raise Forbidden(f'pods "{pod.metadata.name}" is forbidden: no PriorityClass with name {name} '
                            f"was found") from None
    else:
        pc = next((c for c in await _classes(store) if c.global_default), None)
    value = pc.value if pc is not None else 0
    if spec.HasField("priority") and spec.priority != value:
        raise Forbidden(f'pods "{pod.metadata.name}" is forbidden: the integer value of priority ({spec.priority}) '
                        f"must not be provided in pod spec; priority admission controller computed {value} "
                        f"from the given PriorityClass name")
    spec.priority = value
    if pc is not None:
        spec.priority_class_name = pc.metadata.name
        if not spec.HasField("preemption_policy") and pc.HasField("preemption_policy"):
            spec.preemption_policy = pc.preemption_policy
