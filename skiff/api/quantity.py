"""Kubernetes resource quantities ("500m", "0.5", "128Mi", "1G", "1e3"), parsed in one place.

CPU is carried as millicores and memory as bytes; both as ints, so no float
rounding ever reaches a cgroup file.

The parser is bounded as Kubernetes' (apimachinery's ``ParseQuantity``) is, so
that no input costs more than a few microseconds anywhere it is parsed (the
CLI, server validation, the scheduler, the agent — several of them on an event
loop): the text is at most ``MAX_LENGTH`` characters with at most
``MAX_DIGITS`` digits, the magnitude is checked from the digit count and the
exponent *before* any arithmetic, and a value beyond int64 after scaling is
refused. The exact value is then computed with small Python ints (never
``Decimal`` with an unbounded precision: ``1e999999`` used to take ~25 s of
CPU and ``1e9999999`` raised ``decimal.Overflow``). As in Kubernetes, a
fraction is rounded up to the nano unit (``1e-20`` is ``1n``).
"""
from __future__ import annotations

import functools
import re
from fractions import Fraction

# (base, power) of each suffix: the value is multiplied by base ** power.
_SUFFIXES: dict[str, tuple[int, int]] = {
    "": (10, 0),
    "n": (10, -9), "u": (10, -6), "m": (10, -3),
    "k": (10, 3), "M": (10, 6), "G": (10, 9), "T": (10, 12), "P": (10, 15), "E": (10, 18),
    "Ki": (2, 10), "Mi": (2, 20), "Gi": (2, 30), "Ti": (2, 40), "Pi": (2, 50), "Ei": (2, 60),
}
_QUANTITY = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?([a-zA-Z]*)")

MAX_LENGTH = 64
"""Longest quantity text accepted (Kubernetes' canonical forms are far shorter)."""
MAX_DIGITS = 32
"""Most digits in the number before the suffix or exponent."""
MAX_VALUE = 2**63 - 1
"""Largest value in base units (bytes, cores, ...) after scaling: int64, as in Kubernetes."""
_NANO = 10**9
_EXAMPLE = "expected a number with an optional suffix (m, k, M, G, T, Ki, Mi, Gi, Ti ...) " \
           "or exponent (e3), e.g. 500m, 0.5, 128Mi, 1G"


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity, or one too large to use."""


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= MAX_LENGTH else raw[:MAX_LENGTH] + "...")


# Memoized by text: the scheduler reads the same few strings ("100m", "32Gi") for every
# pod against every node (bench/scheduler.py found parsing was 60% of a scheduling cycle).
# Results are immutable (Fraction, int); errors are not cached, so bad input costs as before.
_CACHE_SIZE = 4096


def parse_quantity(text: str | int | float) -> Fraction:
    """The value of a quantity in base units (cores for CPU, bytes for memory),
    exact and rounded up to a multiple of 1e-9; at most ``MAX_VALUE``."""
    return _parse(str(text).strip())


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _parse(raw: str) -> Fraction:
    if len(raw) > MAX_LENGTH:
        raise QuantityError(f"invalid quantity {_shown(raw)}: longer than {MAX_LENGTH} characters")
    match = _QUANTITY.fullmatch(raw)
    if not match or not (match.group(2) or match.group(3)) or match.group(5) not in _SUFFIXES \
            or (match.group(4) and match.group(5)):
        raise QuantityError(f"invalid quantity {_shown(raw)}: {_EXAMPLE}")
    sign, whole, frac, exp, suffix = match.groups()
    frac = frac or ""
    digits = (whole + frac).lstrip("0")
    if len(whole) + len(frac) > MAX_DIGITS:
        raise QuantityError(f"invalid quantity {_shown(raw)}: more than {MAX_DIGITS} digits")
    if not digits:
        return Fraction(0)
    if sign == "-":
        raise QuantityError(f"invalid quantity {_shown(raw)}: must not be negative")
    base, power = _SUFFIXES[suffix]
    # value = int(digits) * 10**ten * 2**two, with int(digits) < 10**len(digits).
    ten = int(exp or 0) - len(frac) + (power if base == 10 else 0)
    two = power if base == 2 else 0
    # 10**low <= value < 10**(low + 2): decide "too large" and "below a nano" from
    # magnitudes alone (log10(2) > 0.3), so no huge power is ever computed.
    low = len(digits) - 1 + ten + two * 3 // 10
    if low >= 19:                                            # value >= 10**19 > int64
        raise QuantityError(f"invalid quantity {_shown(raw)}: too large, the limit is {MAX_VALUE} "
                            f"(2^63-1) after scaling")
    if low + 2 <= -9:                                        # value < 1e-9: rounded up to 1n
        return Fraction(1, _NANO)
    value = Fraction(int(digits)) * Fraction(10) ** ten * 2**two
    if value > MAX_VALUE:
        raise QuantityError(f"invalid quantity {_shown(raw)}: too large, the limit is {MAX_VALUE} "
                            f"(2^63-1) after scaling")
    nanos = -(-value.numerator * _NANO // value.denominator)   # ceiling
    return Fraction(nanos, _NANO)


def _ceil(value: Fraction) -> int:
    return -(-value.numerator // value.denominator)


def cpu_millis(text: str | int | float) -> int:
    """CPU quantity as millicores, rounded up as Kubernetes does ("0.1" -> 100, "1" -> 1000)."""
    return _cpu_millis(str(text).strip())


def memory_bytes(text: str | int | float) -> int:
    """Memory quantity as bytes, rounded up ("128Mi" -> 134217728, "1G" -> 10**9)."""
    return _memory_bytes(str(text).strip())


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cpu_millis(raw: str) -> int:
    return _ceil(_parse(raw) * 1000)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _memory_bytes(raw: str) -> int:
    return _ceil(_parse(raw))


def format_bytes(n: int) -> str:
    """Bytes as the shortest exact binary quantity ("128Mi"), else plain bytes."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = 2 ** _SUFFIXES[suffix][1]
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def format_millis(m: int) -> str:
    return f"{m // 1000}" if m % 1000 == 0 else f"{m}m"
