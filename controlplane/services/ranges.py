"""Ranges of allocatable values and the bitmap of what is taken (pure).

Kubernetes' `pkg/registry/core/service/allocator`: a range maps each value
(a service IP, a node port) to an offset, a bitmap records the offsets in
use, and the three ways an allocation fails have their own errors, worded
as the API server words them.

    IpRange("10.96.0.0/16")   offsets 0..65533 are 10.96.0.1..10.96.255.254
                              (the network and broadcast addresses are never handed out)
    PortRange(30000, 2768)    offsets 0..2767 are 30000..32767
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Union

Value = Union[str, int]


class AllocationError(Exception):
    """A value could not be allocated; the message is Kubernetes' wording."""


class AlreadyAllocated(AllocationError):
    pass


class NotInRange(AllocationError):
    pass


class RangeFull(AllocationError):
    pass


@dataclass(frozen=True)
class IpRange:
    cidr: str

    def __post_init__(self) -> None:
        network = ipaddress.ip_network(self.cidr)
        if network.version != 4:
            raise ValueError(f"{self.cidr}: only IPv4 service ranges are supported")
        if network.num_addresses < 4:
            raise ValueError(f"{self.cidr}: too small (at least a /30)")
        if network.num_addresses > 1 << 20:
            raise ValueError(f"{self.cidr}: too large (at most a /12, as Kubernetes)")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(self.cidr)

    @property
    def size(self) -> int:
        return self.network.num_addresses - 2

    def offset(self, value: Value) -> int | None:
        try:
            ip = ipaddress.ip_address(str(value))
        except ValueError:
            return None
        network = self.network
        if ip not in network or ip in (network.network_address, network.broadcast_address):
            return None
        return int(ip) - int(network.network_address) - 1

    def value(self, offset: int) -> str:
        return str(ipaddress.ip_address(int(self.network.network_address) + 1 + offset))

    def not_in_range(self, value: Value) -> NotInRange:
        return NotInRange(f"the provided IP ({value}) is not in the valid range. The range of valid IPs is {self.cidr}")

    def already(self, value: Value) -> AlreadyAllocated:
        return AlreadyAllocated("provided IP is already allocated")

    def full(self) -> RangeFull:
        return RangeFull("range is full")

    def __str__(self) -> str:
        return self.cidr


@dataclass(frozen=True)
class PortRange:
    base: int
    size: int

    @classmethod
    def parse(cls, text: str) -> "PortRange":
        """"30000-32767" (or one port "30000"), Kubernetes' --service-node-port-range."""
        low, _, high = text.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise ValueError(f"{text!r}: expected FIRST-LAST, e.g. 30000-32767") from None
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"{text!r}: ports must be 1-65535, the first not above the last")
        return cls(first, last - first + 1)

    def offset(self, value: Value) -> int | None:
        port = int(value)
        return port - self.base if self.base <= port < self.base + self.size else None

    def value(self, offset: int) -> int:
        return self.base + offset

    def not_in_range(self, value: Value) -> NotInRange:
        return NotInRange(f"provided port is not in the valid range. The range of valid ports is {self}")

    def already(self, value: Value) -> AlreadyAllocated:
        return AlreadyAllocated("provided port is already allocated")

    def full(self) -> RangeFull:
        return RangeFull("range is full")

    def __str__(self) -> str:
        return f"{self.base}-{self.base + self.size - 1}"


Range = Union[IpRange, PortRange]


class Bitmap:
    """Offsets in use, one bit each (Kubernetes' AllocationBitmap)."""

    def __init__(self, size: int, data: bytes = b"") -> None:
        self.size = size
        self.bits = int.from_bytes(data, "little") & ((1 << size) - 1)

    def has(self, offset: int) -> bool:
        return bool(self.bits >> offset & 1)

    def set(self, offset: int) -> None:
        self.bits |= 1 << offset

    def clear(self, offset: int) -> None:
        self.bits &= ~(1 << offset)

    def first_free(self, start: int = 0) -> int | None:
        """A free offset: the first at or after `start`'s byte, wrapping around; None when full."""
        data = self.to_bytes()
        first = min(start // 8, len(data) - 1)
        for index in (*range(first, len(data)), *range(0, first)):
            byte = data[index]
            if byte == 0xFF:
                continue
            for bit in range(8):
                offset = index * 8 + bit
                if offset < self.size and not byte >> bit & 1:
                    return offset
        return None

    def offsets(self) -> set[int]:
        return {i for i in range(self.size) if self.bits >> i & 1}

    def count(self) -> int:
        return bin(self.bits).count("1")

    def to_bytes(self) -> bytes:
        return self.bits.to_bytes((self.size + 7) // 8, "little")
