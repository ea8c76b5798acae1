"""The `kubernetes` Service in `default`: how pods find the API (Kubernetes'
apiserver endpoint reconciler). A ClusterIP Service with the range's first
address, port 443 ("https") to the REST front door's port, no selector, and
its Endpoints and EndpointSlice written here (the EndpointSlice controller
leaves selector-less Services alone). Idempotent: run at every start, it
moves the endpoints to where the front door listens now.
"""
from __future__ import annotations

import logging

from google.protobuf.message import Message

from controlplane.api.errors import Invalid
from controlplane.store.interface import AlreadyExists, NotFound
from proto.skiff.v1 import services_pb2
from skiff.api import kinds
from skiff.api.kinds.endpointslice import MANAGED_BY_LABEL, SERVICE_NAME_LABEL

log = logging.getLogger("skiff.controlplane.services")

NAME, NAMESPACE = "kubernetes", "default"
PORT = 443
LABELS = {"component": "apiserver", "provider": "kubernetes"}


def service(cluster_ip: str, target_port: int = PORT) -> services_pb2.Service:
    svc = services_pb2.Service()
    svc.metadata.name, svc.metadata.namespace = NAME, NAMESPACE
    svc.metadata.labels.update(LABELS)
    svc.spec.cluster_ip = cluster_ip
    svc.spec.ports.add(name="https", protocol="TCP", port=PORT, target_port=str(target_port))
    return svc


def endpoints(host: str, port: int) -> services_pb2.Endpoints:
    ep = services_pb2.Endpoints()
    ep.metadata.name, ep.metadata.namespace = NAME, NAMESPACE
    ep.metadata.labels["endpointslice.kubernetes.io/skip-mirror"] = "true"
    subset = ep.subsets.add()
    subset.addresses.add(ip=host)
    subset.ports.add(name="https", port=port, protocol="TCP")
    return ep


def endpoint_slice(host: str, port: int) -> services_pb2.EndpointSlice:
    sl = services_pb2.EndpointSlice(address_type="IPv4")
    sl.metadata.name, sl.metadata.namespace = NAME, NAMESPACE
    sl.metadata.labels.update({SERVICE_NAME_LABEL: NAME, MANAGED_BY_LABEL: "skiff-controlplane"})
    endpoint = sl.endpoints.add(addresses=[host])
    endpoint.conditions.ready = True
    sl.ports.add(name="https", port=port, protocol="TCP")
    return sl


async def ensure(registry, *, cluster_ip: str, rest_address: str) -> None:
    """Create the Service (or keep the one there, its target port moved to the front door's), and point
    its endpoints at `rest_address` (HOST:PORT; "" = none)."""
    host, _, port_text = rest_address.rpartition(":")
    port = int(port_text) if port_text.isdigit() else PORT
    kind = kinds.kind_named("Service")
    try:
        existing = await registry.get(kind, NAMESPACE, NAME)
    except NotFound:
        try:
            await registry.create(service(cluster_ip, port))
        except AlreadyExists:
            pass
        except Invalid as exc:
            # The range's first address held by another Service (the range changed since): the API
            # still serves; the `kubernetes` Service is missing until that Service is deleted.
            log.error("cannot create the kubernetes Service at %s: %s", cluster_ip, exc)
            return
    else:
        if [p.target_port for p in existing.spec.ports] != [str(port)]:
            moved = type(existing)()
            moved.CopyFrom(existing)
            del moved.spec.ports[:]
            moved.spec.ports.add(name="https", protocol="TCP", port=PORT, target_port=str(port))
            await registry.update(moved)
    if not rest_address:
        return
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    for obj in (endpoints(host, port), endpoint_slice(host, port)):
        await _put(registry, obj)


async def _put(registry, obj: Message) -> None:
    kind = kinds.kind_of(obj)
    try:
        existing = await registry.get(kind, obj.metadata.namespace, obj.metadata.name)
    except NotFound:
        try:
            await registry.create(obj)
        except AlreadyExists:
            pass
        return
    obj.metadata.resource_version = existing.metadata.resource_version
    await registry.update(obj)
