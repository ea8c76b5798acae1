"""Endpoints (v1, legacy): a Service's pod addresses and ports, as subsets.

Kept for tools that still read them (kubectl describe svc, older clients);
the EndpointSlice controller (controlplane/controllers/endpointslice.py)
writes them from the same data as the Service's EndpointSlices. Checks:
addresses are IPs, ports 1-65535 with TCP/UDP/SCTP, names DNS-1123 labels.
"""
from __future__ import annotations

import ipaddress
from datetime import datetime

from google.protobuf.message import Message

from proto.skiff.v1 import services_pb2
from skiff.api import humanize
from skiff.api.kinds.service import PROTOCOLS, unsupported
from skiff.api.kinds.strategy import Kind, Strategy
from skiff.api.validation import FieldError, dns1123_label_error, quoted


def endpoints_text(ep: Message) -> str:
    """kubectl's ENDPOINTS column: ready ip:port pairs, the first three, then "+ N more..."."""
    items = [f"{a.ip}:{p.port}" if p.port else a.ip
             for subset in ep.subsets for p in (subset.ports or [services_pb2.EndpointPort()])
             for a in subset.addresses]
    if not items:
        return "<none>"
    return ",".join(items[:3]) + (f" + {len(items) - 3} more..." if len(items) > 3 else "")


class EndpointsStrategy(Strategy):
    def defaults(self, obj: Message) -> Message:
        super().defaults(obj)
        for subset in obj.subsets:
            for port in subset.ports:
                port.protocol = port.protocol or "TCP"
        return obj

    def validate(self, obj: Message) -> list[FieldError]:
        errors = super().validate(obj)
        for i, subset in enumerate(obj.subsets):
            where = f"subsets[{i}]"
            for field, addresses in (("addresses", subset.addresses), ("notReadyAddresses", subset.not_ready_addresses)):
                for j, address in enumerate(addresses):
                    try:
                        ipaddress.ip_address(address.ip)
                    except ValueError:
                        errors.append(FieldError(f"{where}.{field}[{j}].ip", f"Invalid value: {quoted(address.ip)}: "
                                                                             f"must be a valid IP address"))
            for j, port in enumerate(subset.ports):
                if port.name and (problem := dns1123_label_error(port.name)):
                    errors.append(FieldError(f"{where}.ports[{j}].name", f"Invalid value: {quoted(port.name)}: "
                                                                         f"{problem.split(': ', 1)[-1]}"))
                if not 1 <= port.port <= 65535:
                    errors.append(FieldError(f"{where}.ports[{j}].port", f"Invalid value: {port.port}: "
                                                                         f"must be between 1 and 65535, inclusive"))
                if (port.protocol or "TCP") not in PROTOCOLS:
                    errors.append(FieldError(f"{where}.ports[{j}].protocol", unsupported(port.protocol, PROTOCOLS)))
        return errors

    def columns(self, *, wide: bool) -> list[str]:
        return ["NAME", "ENDPOINTS", "AGE"]

    def row(self, obj: Message, *, wide: bool, now: datetime) -> list[str]:
        return [obj.metadata.name, endpoints_text(obj), humanize.age(obj.metadata.creation_timestamp, now=now)]


KIND = Kind("Endpoints", "v1", "endpoints", "endpoints", services_pb2.Endpoints, True, ("ep",),
            strategy=EndpointsStrategy())
