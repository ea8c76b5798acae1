"""Kubernetes resource quantities ("500m", "0.5", "128Mi", "1G"), parsed in one place.

CPU is carried as millicores and memory as bytes; both as ints, so no float
rounding ever reaches a cgroup file.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+))?([a-zA-Z]*)$")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(text: str | int | float) -> Decimal:
    """The value of a quantity in base units (cores for CPU, bytes for memory)."""
    raw = str(text).strip()
    match = _QUANTITY.match(raw)
    if not match or match.group(3) not in _SUFFIXES or (match.group(2) and match.group(3)):
        raise QuantityError(
            f"invalid quantity {raw!r}: expected a number with an optional suffix "
            f"(m, k, M, G, T, Ki, Mi, Gi, Ti ...), e.g. 500m, 0.5, 128Mi, 1G")
    try:
        value = Decimal(match.group(1))
        if match.group(2):
            value *= Decimal(10) ** int(match.group(2))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise QuantityError(f"invalid quantity {raw!r}") from exc
    if value < 0:
        raise QuantityError(f"invalid quantity {raw!r}: must not be negative")
    return value * _SUFFIXES[match.group(3)]


def cpu_millis(text: str | int | float) -> int:
    """CPU quantity as millicores, rounded up as Kubernetes does ("0.1" -> 100, "1" -> 1000)."""
    value = parse_quantity(text) * 1000
    return int(value.to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(text: str | int | float) -> int:
    """Memory quantity as bytes, rounded up ("128Mi" -> 134217728, "1G" -> 10**9)."""
    return int(parse_quantity(text).to_integral_value(rounding="ROUND_CEILING"))


def format_bytes(n: int) -> str:
    """Bytes as the shortest exact binary quantity ("128Mi"), else plain bytes."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = int(_SUFFIXES[suffix])
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def format_millis(m: int) -> str:
    return f"{m // 1000}" if m % 1000 == 0 else f"{m}m"
