"""Times and tables as kubectl prints them: ages ("5s", "2m30s", "4d") and
tab-aligned columns. Shared by the printers, `describe` and the kind files."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Sequence


def age(ts: Any, *, now: datetime) -> str:
    """kubectl's HumanDuration of now - ts ("5s", "2m30s", "3h", "4d"); <unknown> if unset."""
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return "<unknown>"
    seconds = int((now - ts.ToDatetime(tzinfo=timezone.utc)).total_seconds())
    return duration(seconds)


def duration(seconds: int) -> str:
    if seconds < -1:
        return "<invalid>"
    seconds = max(seconds, 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m" if seconds % 60 == 0 else f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d" if hours % 24 == 0 else f"{days}d{hours % 24}h"
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        return f"{days // 365}y{days % 365}d"
    return f"{days // 365}y"


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Columns left-aligned, three spaces apart, as kubectl's tabwriter."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines) + "\n"
