"""Kubernetes' Priority admission: two admission plug-ins (the registry's
AdmissionPlugin, registered per kind in plugins.py).

    PodPriority          Pod create: spec.priorityClassName -> spec.priority (the class's value) and
                         spec.preemptionPolicy (the class's, unless the pod sets one); no name: the
                         global default class, else 0; an unknown name is refused (403) with
                         Kubernetes' words "no PriorityClass with name X was found"; a spec.priority
                         that differs from the class's value is refused as Kubernetes refuses it.
                         Pod update: the priority stays what admission computed (a manifest
                         applied again omits it).
    OneDefaultClass      PriorityClass create and update: at most one globalDefault

Pods read the classes from the API server's informer cache (informers.py), not the store: a pod
create costs no store read, however many classes there are. The cache lags a write by one watch
event, so a class named by a pod and missing from the cache is looked up in the store before the
pod is refused (a manifest with a class and a pod naming it applies in one go); a global default
created an instant before a pod may be missed, as on Kubernetes. PriorityClass writes, rare, read
the store, so two concurrent defaults are seen.

The built-in system-cluster-critical and system-node-critical classes are
created at start (`bootstrap`), as the API server does.
"""
from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from controlplane.api.errors import Forbidden
from controlplane.api.informers import LoopbackInformers, NotReady
from controlplane.store.interface import AlreadyExists, NotFound
from skiff.api import kinds
from skiff.api.kinds.priorityclass import SYSTEM_CLASSES, system_class

KIND = "PriorityClass"


async def bootstrap(create: Any) -> None:
    """Create the system classes (idempotent); `create` is the registry's create."""
    if not served():
        return
    for name in SYSTEM_CLASSES:
        try:
            await create(system_class(name))
        except AlreadyExists:
            pass


def served() -> bool:
    try:
        kinds.kind_named(KIND)
        return True
    except kinds.UnknownKind:
        return False


class PodPriority:
    """Pods: the priority of their class, from the informer cache."""

    def __init__(self, *, informers: LoopbackInformers, store: Any) -> None:
        self.informers = informers
        self.store = store

    async def admit(self, old: Message | None, new: Message) -> None:
        if old is not None:
            _keep(new, old)
            return
        spec = new.spec
        try:
            classes = await self.informers.lister(KIND)
        except NotReady:
            raise Forbidden(f'pods "{new.metadata.name}" is forbidden: not yet ready to handle request') from None
        name = spec.priority_class_name
        if name:
            pc = classes.get_named("", name) or await self._stored(new, name)
        else:
            pc = next((c for c in classes.list() if c.global_default), None)
        value = pc.value if pc is not None else 0
        if spec.HasField("priority") and spec.priority != value:
            raise Forbidden(f'pods "{new.metadata.name}" is forbidden: the integer value of priority '
                            f"({spec.priority}) must not be provided in pod spec; priority admission controller "
                            f"computed {value} from the given PriorityClass name")
        spec.priority = value
        if pc is not None:
            spec.priority_class_name = pc.metadata.name
            if not spec.HasField("preemption_policy") and pc.HasField("preemption_policy"):
                spec.preemption_policy = pc.preemption_policy

    async def _stored(self, pod: Message, name: str) -> Message:
        """A class the cache has not seen (yet): the store's, or the pod is refused."""
        try:
            return await self.store.get(kinds.kind_named(KIND), "", name)
        except NotFound:
            raise Forbidden(f'pods "{pod.metadata.name}" is forbidden: no PriorityClass with name {name} '
                            f"was found") from None


def _keep(pod: Message, old: Message) -> None:
    """At update: a pod keeps the priority admission gave it (its spec is immutable)."""
    spec = pod.spec
    if not spec.HasField("priority") and old.spec.HasField("priority"):
        spec.priority = old.spec.priority
    if not spec.HasField("preemption_policy") and old.spec.HasField("preemption_policy"):
        spec.preemption_policy = old.spec.preemption_policy
    if not spec.priority_class_name:
        spec.priority_class_name = old.spec.priority_class_name


class OneDefaultClass:
    """PriorityClasses: at most one globalDefault, at create and at update."""

    def __init__(self, *, store: Any) -> None:
        self.store = store

    async def admit(self, old: Message | None, new: Message) -> None:
        if not new.global_default:
            return
        classes, _ = await self.store.list(kinds.kind_named(KIND), "")
        for other in classes:
            if other.global_default and other.metadata.name != new.metadata.name:
                raise Forbidden(f'priorityclasses.scheduling.k8s.io "{new.metadata.name}" is forbidden: '
                                f"PriorityClass {other.metadata.name} is already marked as default. "
                                f"Only one default can exist")
