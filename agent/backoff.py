"""The container restart back-off, as kubelet's (flowcontrol.Backoff): 10 s
doubling to 5 min, per pod container.

The first restart after a crash is immediate; each later one waits the current
back-off counted from when the container finished, and the back-off doubles
with every restart. An entry untouched for twice the maximum (10 min of
running without a crash) is forgotten, so a container that crashes once a day
never waits long. Time comes from the caller, so tests step it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass
class _Entry:
    backoff: float
    last_update: datetime


@dataclass
class RestartBackoff:
    initial: float = 10.0
    maximum: float = 300.0
    _entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)

    def _expired(self, entry: _Entry, event_time: datetime) -> bool:
        return event_time - entry.last_update > timedelta(seconds=2 * self.maximum)

    def remaining(self, key: tuple[str, str], *, finished_at: datetime, now: datetime) -> float:
        """Seconds still to wait before restarting a container that finished at
        `finished_at` (0: restart now)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, finished_at):
            return 0.0
        left = entry.backoff - (now - finished_at).total_seconds()
        return max(0.0, left)

    def current(self, key: tuple[str, str]) -> float:
        """The back-off that applies to the next crash of key (what kubelet prints)."""
        entry = self._entries.get(key)
        return entry.backoff if entry is not None else 0.0

    def next(self, key: tuple[str, str], *, finished_at: datetime) -> None:
        """Record a restart: the next one waits twice as long (up to the maximum)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, finished_at):
            self._entries[key] = _Entry(self.initial, finished_at)
        else:
            entry.backoff = min(entry.backoff * 2, self.maximum)
            entry.last_update = finished_at

    def forget(self, pod_uid: str) -> None:
        for key in [k for k in self._entries if k[0] == pod_uid]:
            del self._entries[key]
