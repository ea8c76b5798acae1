"""The EndpointSlice controller: a Service's selected pods as EndpointSlices
(discovery.k8s.io/v1), and the legacy v1 Endpoints mirrored from the same
data (Kubernetes' endpointslice and endpoints controllers in one).

    Service ─┐                     ┌─ EndpointSlice <svc>-xxxxx  (≤ 100 endpoints, one port list each)
    Pods ────┼─► reconcile(ns/svc) ┼─ EndpointSlice <svc>-yyyyy
    Slices ──┘   (level-triggered) └─ Endpoints <svc>

Per pod (Kubernetes' podToEndpoint): a pod with an IP, not Succeeded/Failed,
is an endpoint; `serving` is its Ready condition, `terminating` its
deletionTimestamp, `ready` = serving and not terminating —
publishNotReadyAddresses makes every one ready and serving. A targetPort by
name is looked up in the pod's container ports (same protocol): pods
resolving the Service's ports to different numbers are in different slices,
and a pod where a name resolves to nothing is left out of that port.
hostname is the pod's spec.hostname when its spec.subdomain is the
Service's name; zone is the node's topology.kubernetes.io/zone label.

Slices are changed as little as possible: an endpoint stays in the slice it
is in, new ones fill slices with room, then new slices; emptied slices go.
A Service with no endpoints keeps one empty slice (Kubernetes' placeholder),
so readers can tell "no endpoints" from "not synced". Slices carry the
labels kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by
and a controller owner reference to the Service (the garbage collector
removes them with it). Services without a selector and ExternalName
Services are left alone (their endpoints are the user's).

Endpoints (v1): one subset per port list, ready pods in `addresses`, the
others in `notReadyAddresses`; terminating pods are left out unless
publishNotReadyAddresses; at most 1000 addresses (annotated
`endpoints.kubernetes.io/over-capacity: truncated`).
"""
from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Mapping

from google.protobuf.message import Message

from controlplane.controllers.ownership import owner_reference
from proto.skiff.v1 import services_pb2, types_pb2
from skiff.api import meta
from skiff.api.kinds import service as services
from skiff.api.kinds.endpointslice import MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from skiff.client import AlreadyExists, ApiClient, Conflict, NotFound
from skiff.controller import Controller, EventHandler, Key, SharedInformerFactory, key_of

log = logging.getLogger(__name__)

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100
MAX_ENDPOINTS_ADDRESSES = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
ZONE_LABEL = "topology.kubernetes.io/zone"
UNSEEN_WAIT_SECONDS = 10.0
_TERMINAL = ("Succeeded", "Failed")

PortsKey = tuple[tuple[str, str, int, str], ...]   # (name, protocol, port, appProtocol) per Service port


# ---------------------------------------------------------------- pure: pods to endpoints

def pod_ready(pod: Message) -> bool:
    condition = meta.get_condition(pod.status.conditions, "Ready")
    return condition is not None and condition.status == "True"


def in_endpoints(pod: Message) -> bool:
    """Kubernetes' ShouldPodBeInEndpoints (terminating pods included; the caller decides)."""
    return bool(pod.status.pod_ip) and pod.status.phase not in _TERMINAL


def resolve_ports(svc: Message, pod: Message) -> PortsKey:
    """The Service's ports as this pod serves them: a named targetPort is its container port of that
    name and protocol (a port with no such container port is left out)."""
    resolved = []
    for port in svc.spec.ports:
        number = services.target_port_number(port)
        if number is None:
            number = next((cp.container_port for c in pod.spec.containers for cp in c.ports
                           if cp.name == port.target_port and (cp.protocol or "TCP") == port.protocol), None)
            if number is None:
                continue
        resolved.append((port.name, port.protocol, number, port.app_protocol))
    return tuple(resolved)


def address_type(ip: str) -> str:
    return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"


def hostname_for(svc: Message, pod: Message) -> str:
    spec = pod.spec
    return spec.hostname if spec.hostname and spec.subdomain == svc.metadata.name else ""


def target_ref(pod: Message) -> types_pb2.ObjectReference:
    return types_pb2.ObjectReference(kind="Pod", namespace=pod.metadata.namespace, name=pod.metadata.name,
                                     uid=pod.metadata.uid)


def endpoint_for(svc: Message, pod: Message, zones: Mapping[str, str] | None = None) -> services_pb2.Endpoint:
    publish = svc.spec.publish_not_ready_addresses
    serving = publish or pod_ready(pod)
    terminating = pod.metadata.HasField("deletion_timestamp")
    endpoint = services_pb2.Endpoint(addresses=[pod.status.pod_ip], target_ref=target_ref(pod))
    endpoint.conditions.ready = publish or (serving and not terminating)
    endpoint.conditions.serving = serving
    endpoint.conditions.terminating = terminating
    if pod.spec.node_name:
        endpoint.node_name = pod.spec.node_name
        if zone := (zones or {}).get(pod.spec.node_name):
            endpoint.zone = zone
    if hostname := hostname_for(svc, pod):
        endpoint.hostname = hostname
    return endpoint


def desired_endpoints(svc: Message, pods: list[Message], zones: Mapping[str, str] | None = None
                      ) -> dict[tuple[str, PortsKey], dict[str, Message]]:
    """(addressType, ports) -> {address: Endpoint} for the pods the Service selects."""
    groups: dict[tuple[str, PortsKey], dict[str, Message]] = {}
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        if not in_endpoints(pod):
            continue
        group = groups.setdefault((address_type(pod.status.pod_ip), resolve_ports(svc, pod)), {})
        group[pod.status.pod_ip] = endpoint_for(svc, pod, zones)
    return groups


def slice_ports(ports: PortsKey) -> list[services_pb2.EndpointSlicePort]:
    out = []
    for name, protocol, number, app_protocol in ports:
        port = services_pb2.EndpointSlicePort(name=name, protocol=protocol, port=number)
        if app_protocol:
            port.app_protocol = app_protocol
        out.append(port)
    return out


def ports_key_of(slice_: Message) -> PortsKey:
    return tuple((p.name, p.protocol, p.port, p.app_protocol) for p in slice_.ports)


# ---------------------------------------------------------------- pure: the plan for a Service's slices

@dataclass
class Plan:
    create: list[Message] = field(default_factory=list)
    update: list[Message] = field(default_factory=list)
    delete: list[Message] = field(default_factory=list)


def new_slice(svc: Message, address_type_: str, ports: PortsKey) -> services_pb2.EndpointSlice:
    sl = services_pb2.EndpointSlice(address_type=address_type_)
    sl.metadata.generate_name = f"{svc.metadata.name}-"
    sl.metadata.namespace = svc.metadata.namespace
    sl.ports.extend(slice_ports(ports))
    return sl


def with_owner_and_labels(svc: Message, sl: Message) -> Message:
    """The slice's labels (the Service's own, then the two the readers select by) and owner reference."""
    labels = dict(svc.metadata.labels)
    labels.update({SERVICE_NAME_LABEL: svc.metadata.name, MANAGED_BY_LABEL: CONTROLLER_NAME})
    sl.metadata.labels.clear()
    sl.metadata.labels.update(labels)
    del sl.metadata.owner_references[:]
    sl.metadata.owner_references.append(owner_reference(svc))
    return sl


def plan_slices(svc: Message, pods: list[Message], existing: list[Message], *,
                max_per_slice: int = MAX_ENDPOINTS_PER_SLICE, zones: Mapping[str, str] | None = None) -> Plan:
    """What to create, update and delete so `existing` (this Service's managed slices) hold the
    endpoints of `pods`, moving as few endpoints as possible."""
    plan = Plan()
    desired = desired_endpoints(svc, pods, zones)
    kept: list[Message] = []
    for old in sorted(existing, key=lambda s: s.metadata.name):
        group = desired.get((old.address_type, ports_key_of(old)))
        sl = meta.copy(old)
        del sl.endpoints[:]
        if group is not None:
            for endpoint in old.endpoints:
                address = endpoint.addresses[0] if endpoint.addresses else ""
                if address in group and len(sl.endpoints) < max_per_slice:
                    sl.endpoints.append(group.pop(address))
        kept.append(sl)
    # New endpoints: into slices with room (same address type and ports), then new slices.
    for (type_, ports), group in desired.items():
        rest = list(group.values())
        for sl in kept:
            if not rest:
                break
            if (sl.address_type, ports_key_of(sl)) == (type_, ports):
                room = max_per_slice - len(sl.endpoints)
                sl.endpoints.extend(rest[:room])
                rest = rest[room:]
        while rest:
            sl = new_slice(svc, type_, ports)
            sl.endpoints.extend(rest[:max_per_slice])
            rest = rest[max_per_slice:]
            plan.create.append(with_owner_and_labels(svc, sl))
    survivors = [sl for sl in kept if sl.endpoints]
    if not survivors and not plan.create:
        # No endpoints at all: one empty placeholder slice (reused if there is one).
        if kept:
            survivors = [kept[0]]
        else:
            plan.create.append(with_owner_and_labels(svc, new_slice(svc, "IPv4", ())))
    by_name = {sl.metadata.name: sl for sl in existing}
    for sl in kept:
        if not any(sl is s for s in survivors):
            plan.delete.append(by_name[sl.metadata.name])
            continue
        with_owner_and_labels(svc, sl)
        if sl != by_name[sl.metadata.name]:
            plan.update.append(sl)
    return plan


# ---------------------------------------------------------------- pure: legacy Endpoints

def desired_legacy_endpoints(svc: Message, pods: list[Message]) -> services_pb2.Endpoints:
    ep = services_pb2.Endpoints()
    ep.metadata.name, ep.metadata.namespace = svc.metadata.name, svc.metadata.namespace
    ep.metadata.labels.update(svc.metadata.labels)
    publish = svc.spec.publish_not_ready_addresses
    subsets: dict[PortsKey, services_pb2.EndpointSubset] = {}
    count = 0
    for pod in sorted(pods, key=lambda p: p.status.pod_ip):
        if not in_endpoints(pod) or (pod.metadata.HasField("deletion_timestamp") and not publish):
            continue
        if count >= MAX_ENDPOINTS_ADDRESSES:
            ep.metadata.annotations[OVER_CAPACITY] = "truncated"
            break
        ports = resolve_ports(svc, pod)
        subset = subsets.get(ports)
        if subset is None:
            subset = subsets[ports] = services_pb2.EndpointSubset()
            for name, protocol, number, app_protocol in ports:
                port = subset.ports.add(name=name, protocol=protocol, port=number)
                if app_protocol:
                    port.app_protocol = app_protocol
        address = services_pb2.EndpointAddress(ip=pod.status.pod_ip, target_ref=target_ref(pod),
                                               hostname=hostname_for(svc, pod))
        if pod.spec.node_name:
            address.node_name = pod.spec.node_name
        (subset.addresses if publish or pod_ready(pod) else subset.not_ready_addresses).append(address)
        count += 1
    ep.subsets.extend(subsets.values())
    return ep


# ---------------------------------------------------------------- the controller

def selects(svc: Message, labels) -> bool:
    selector = svc.spec.selector
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def managed(svc: Message) -> bool:
    """Whether the Service's endpoints are this controller's to write."""
    return bool(svc.spec.selector) and svc.spec.type != services.EXTERNAL_NAME


class EndpointSliceController(Controller):
    name = "endpointslice"

    def __init__(self, *, client: ApiClient, factory: SharedInformerFactory,
                 max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> None:
        super().__init__(metrics=factory.metrics)
        self.client = client
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.services = self.watch(factory.informer("Service"))
        self.pods = self.uses(factory.informer("Pod"))
        self.pods.add_event_handler(EventHandler(on_add=self._pod_changed, on_update=self._pod_changed,
                                                 on_delete=self._pod_changed))
        self.slices = self.uses(factory.informer("EndpointSlice"))
        self.slices.add_event_handler(EventHandler(on_add=self._slice_changed, on_update=self._slice_changed,
                                                   on_delete=self._slice_changed))
        self.nodes = self.uses(factory.informer("Node"))   # an endpoint's zone is its node's
        self.endpoints = self.uses(factory.informer("Endpoints"))
        self.endpoints.add_event_handler(EventHandler(on_update=self._endpoints_changed,
                                                      on_delete=self._endpoints_changed))
        # Slices this controller created that its informer has not shown yet, per Service: until it
        # has, a plan from the cache would create them again (Kubernetes' endpointSliceTracker).
        # (A slice deleted before it was ever seen would hold the Service up: the wait is bounded.)
        self._unseen: dict[Key, tuple[float, set[str]]] = {}

    def _pod_changed(self, key: Key, *pods: Message) -> None:
        for svc in self.services.lister.list(key[0]):
            if any(selects(svc, pod.metadata.labels) for pod in pods):
                self.enqueue(key_of(svc))

    def _slice_changed(self, key: Key, *slices: Message) -> None:
        for sl in slices:
            if sl.metadata.labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME:
                if service_name := sl.metadata.labels.get(SERVICE_NAME_LABEL):
                    self.enqueue((sl.metadata.namespace, service_name))

    def _endpoints_changed(self, key: Key, *_: Message) -> None:
        self.enqueue(key)

    def _managed_slices(self, namespace: str, name: str) -> list[Message]:
        return [sl for sl in self.slices.lister.list(namespace)
                if sl.metadata.labels.get(SERVICE_NAME_LABEL) == name
                and sl.metadata.labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME]

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        svc = self.services.get(key)
        existing = self._managed_slices(namespace, name)
        if svc is None or svc.metadata.HasField("deletion_timestamp") or not managed(svc):
            for sl in existing:
                await self._delete("EndpointSlice", sl)
            old = self.endpoints.get(key)
            if old is not None and svc is None:   # a selector-less Service's Endpoints are the user's
                await self._delete("Endpoints", old)
            return None
        if key in self._unseen:
            since, unseen = self._unseen[key]
            unseen -= {sl.metadata.name for sl in existing}
            if unseen and time.monotonic() - since < UNSEEN_WAIT_SECONDS:
                return 0.1   # look again once the informer has caught up with our own writes
            del self._unseen[key]
        pods = [p for p in self.pods.lister.list(namespace) if selects(svc, p.metadata.labels)]
        zones = {n.metadata.name: n.metadata.labels[ZONE_LABEL] for n in self.nodes.lister.list()
                 if ZONE_LABEL in n.metadata.labels}
        plan = plan_slices(svc, pods, existing, max_per_slice=self.max_endpoints_per_slice, zones=zones)
        for sl in plan.delete:
            await self._delete("EndpointSlice", sl)
        for sl in plan.update:
            try:
                await self.client.update(sl)
            except NotFound:
                self.enqueue(key)
        for sl in plan.create:
            created = await self.client.create(sl)
            self._unseen.setdefault(key, (time.monotonic(), set()))[1].add(created.metadata.name)
        await self._sync_endpoints(svc, pods)
        return None

    async def _sync_endpoints(self, svc: Message, pods: list[Message]) -> None:
        desired = desired_legacy_endpoints(svc, pods)
        current = self.endpoints.get(key_of(svc))
        if current is None:
            try:
                await self.client.create(desired)
            except AlreadyExists:
                self.enqueue(key_of(svc))
            return
        if (list(current.subsets) == list(desired.subsets) and dict(current.metadata.labels) == dict(desired.metadata.labels)
                and dict(current.metadata.annotations) == dict(desired.metadata.annotations)):
            return
        updated = meta.copy(current)
        del updated.subsets[:]
        updated.subsets.extend(desired.subsets)
        updated.metadata.labels.clear()
        updated.metadata.labels.update(desired.metadata.labels)
        updated.metadata.annotations.pop(OVER_CAPACITY, None)
        updated.metadata.annotations.update(desired.metadata.annotations)
        try:
            await self.client.update(updated)
        except Conflict:
            self.enqueue(key_of(svc))

    async def _delete(self, kind: str, obj: Message) -> None:
        try:
            await self.client.delete(kind, obj.metadata.name, obj.metadata.namespace,
                                     precondition_uid=obj.metadata.uid)
        except (NotFound, Conflict):
            pass
