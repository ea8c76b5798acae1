"""EndpointSlice (discovery.k8s.io/v1): a slice of a Service's endpoints — at
most 1000 (the controller writes at most 100) pod addresses with their
ready/serving/terminating conditions, node and hostname, and the ports they
serve. Label `kubernetes.io/service-name` names the Service; the node-side
readers (service proxy, DNS) select slices by it.

Checks as Kubernetes' ValidateEndpointSlice: addressType IPv4, IPv6 or FQDN
(immutable), each endpoint 1 to 100 addresses of that type, hostname a
DNS-1123 label, at most 100 ports with unique DNS-1123 names, port numbers
1-65535, protocols TCP/UDP/SCTP.
"""
from __future__ import annotations

import ipaddress
from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import services_pb2
from skiff.api import humanize
from skiff.api.kinds.service import PROTOCOLS, unsupported
from skiff.api.kinds.strategy import Kind, Strategy, getter
from skiff.api.validation import FieldError, dns1123_label_error, dns1123_subdomain_error, port_name_errors, quoted

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
MAX_ENDPOINTS = 1000
MAX_PORTS = 100
MAX_ADDRESSES = 100


def _more(items: list[str], empty: str) -> str:
    if not items:
        return empty
    return ",".join(items[:3]) + (f" + {len(items) - 3} more..." if len(items) > 3 else "")


def ports_text(slice_: Message) -> str:
    """kubectl's PORTS: the port numbers (<unset> for none)."""
    return _more([str(p.port) if p.HasField("port") else "<unset>" for p in slice_.ports], "<unset>")


def endpoints_text(slice_: Message) -> str:
    """kubectl's ENDPOINTS: the addresses of every endpoint, ready or not."""
    return _more([a for e in slice_.endpoints for a in e.addresses], "<unset>")


def _address_error(address: str, address_type: str) -> str | None:
    if address_type == "FQDN":
        return dns1123_subdomain_error(address)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "must be a valid IP address"
    if ip.version != (4 if address_type == "IPv4" else 6):
        return f"must be an {address_type} address"
    return None


class EndpointSliceStrategy(Strategy):
    immutable_fields = ("addressType",)

    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        for port in obj.ports:
            if not port.HasField("protocol"):
                port.protocol = "TCP"
            if not port.HasField("name"):
                port.name = ""
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        errors = super().validate(obj)
        if obj.address_type not in ADDRESS_TYPES:
            errors.append(FieldError("addressType", unsupported(obj.address_type, ADDRESS_TYPES)
                                     if obj.address_type else "Required value"))
        if len(obj.endpoints) > MAX_ENDPOINTS:
            errors.append(FieldError("endpoints", f"Too many: {len(obj.endpoints)}: must have at most "
                                                  f"{MAX_ENDPOINTS} items"))
        for i, endpoint in enumerate(obj.endpoints):
            where = f"endpoints[{i}]"
            if not endpoint.addresses:
                errors.append(FieldError(f"{where}.addresses", "Required value: must contain at least 1 address"))
            elif len(endpoint.addresses) > MAX_ADDRESSES:
                errors.append(FieldError(f"{where}.addresses", f"Too many: {len(endpoint.addresses)}: must have at "
                                                               f"most {MAX_ADDRESSES} items"))
            if obj.address_type in ADDRESS_TYPES:
                for j, address in enumerate(endpoint.addresses):
                    if problem := _address_error(address, obj.address_type):
                        errors.append(FieldError(f"{where}.addresses[{j}]",
                                                 f"Invalid value: {quoted(address)}: {problem.split(': ', 1)[-1]}"))
            if endpoint.HasField("hostname") and (problem := dns1123_label_error(endpoint.hostname)):
                errors.append(FieldError(f"{where}.hostname", f"Invalid value: {quoted(endpoint.hostname)}: "
                                                              f"{problem.split(': ', 1)[-1]}"))
            if endpoint.HasField("node_name") and (problem := dns1123_subdomain_error(endpoint.node_name)):
                errors.append(FieldError(f"{where}.nodeName", f"Invalid value: {quoted(endpoint.node_name)}: "
                                                              f"{problem.split(': ', 1)[-1]}"))
        if len(obj.ports) > MAX_PORTS:
            errors.append(FieldError("ports", f"Too many: {len(obj.ports)}: must have at most {MAX_PORTS} items"))
        errors += port_name_errors([p.name for p in obj.ports], "ports")
        for i, port in enumerate(obj.ports):
            where = f"ports[{i}]"
            if port.HasField("port") and not 1 <= port.port <= 65535:
                errors.append(FieldError(f"{where}.port", f"Invalid value: {port.port}: "
                                                          f"must be between 1 and 65535, inclusive"))
            if port.HasField("protocol") and port.protocol not in PROTOCOLS:
                errors.append(FieldError(f"{where}.protocol", unsupported(port.protocol, PROTOCOLS)))
        return errors

    @property
    def field_selectors(self):
        return {**super().field_selectors, "addressType": getter("address_type")}

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        return [obj.metadata.name, obj.address_type, ports_text(obj), endpoints_text(obj),
                humanize.age(obj.metadata.creation_timestamp, now=now)]


KIND = Kind("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", "endpoint_slice", services_pb2.EndpointSlice,
            True, ("endpointslice",), strategy=EndpointSliceStrategy())
