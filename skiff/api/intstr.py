"""Kubernetes' IntOrString, the one place it is parsed.

The API stores it as a string ("1" or "25%"; a YAML integer is kept as its
text by the manifest reader). A percentage scales against a total and is
rounded the way the caller asks: Kubernetes rounds a Deployment's maxSurge up
and its maxUnavailable down (`GetScaledValueFromIntOrPercent`).
"""
from __future__ import annotations

import re

_INT = re.compile(r"^-?[0-9]+$")
_PERCENT = re.compile(r"^-?[0-9]+%$")


class IntOrStringError(ValueError):
    """A value that is neither an integer nor a percentage."""


def check(value: str) -> str | None:
    """What is wrong with `value`, or None; negative values are refused."""
    if _INT.match(value) or _PERCENT.match(value):
        if value.startswith("-"):
            return f"{value!r}: must be greater than or equal to 0"
        if value.endswith("%") and int(value[:-1]) > 100:
            return f"{value!r}: must not be greater than 100%"
        return None
    return f"{value!r}: must be an integer or a percentage (e.g. 1 or 25%)"


def scaled(value: str, total: int, *, round_up: bool) -> int:
    """`value` as a count out of `total`: "3" is 3, "25%" of 10 is 3 (up) or 2 (down)."""
    if _INT.match(value):
        return int(value)
    if _PERCENT.match(value):
        # Integer arithmetic, so 10% of 30 is exactly 3 (floats make it 3.0000000000000004).
        numerator = int(value[:-1]) * total
        return -(-numerator // 100) if round_up else numerator // 100
    raise IntOrStringError(f"{value!r} is neither an integer nor a percentage")
