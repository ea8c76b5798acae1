"""Progress of long work, shown to a person: one port, two renderings.

Work that takes seconds to minutes (debootstrap, pulling, pushing, loading
or saving an image) reports through the `Progress` protocol — a stage, a
count of total, bytes — and says nothing about how it is shown. The CLI
passes a `ProgressLine`, which renders as apt and docker users expect:

- on a terminal, one live line rewritten in place (at most ten times a
  second), e.g. `unpacking 34/93 packages, 41.2 MB, 23s`; lines given to
  `message` (docker's "abc123: Pull complete") scroll above it;
- on a pipe or file, plain lines `interval` seconds apart (the first after
  `interval` seconds), so a log gets a sign of life without a line per
  byte, and work that ends quickly prints exactly what it printed before.

`--quiet` passes no Progress at all (None), which keeps today's silence.
`CountingFile` turns reads and writes of a file or a response into byte updates.
"""
from __future__ import annotations

import os
import time
from typing import BinaryIO, Callable, Protocol, TextIO


class Progress(Protocol):
    def update(self, *, stage: str, done: int | None = None, total: int | None = None, unit: str = "",
               nbytes: int | None = None, total_bytes: int | None = None) -> None:
        """The current state; fields left None keep no value (a new stage starts empty)."""

    def message(self, text: str) -> None:
        """A line that stays (a step finished)."""

    def finish(self, text: str | None = None) -> None:
        """The work is over: the live line goes, `text` (if any) stays."""


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def human_elapsed(seconds: float) -> str:
    s = int(seconds)
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s"


class ProgressLine:
    """A Progress rendered on a text stream (see the module docstring). It is
    also a text stream itself (`write`), so code that prints whole lines can
    be given it and its lines become messages."""

    def __init__(self, stream: TextIO, *, live: bool | None = None, interval: float = 3.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.state: dict = {}
        self.shown = ""          # on a terminal: what the live line shows now
        self.last_time = self.started if not self.live else float("-inf")
        self.last_stage: str | None = None
        self.pending = ""        # `write` collects partial lines here

    def render(self) -> str:
        s = self.state
        parts = [s["stage"]]
        if s.get("done") is not None:
            count = f"{s['done']}/{s['total']}" if s.get("total") else f"{s['done']}"
            unit = s.get("unit") or ""
            # "unpacking packages 3/93", not "unpacking packages 3/93 packages"
            parts[0] += f" {count}" + (f" {unit}" if unit and not s["stage"].endswith(unit) else "")
        if s.get("nbytes") is not None:
            amount = human_bytes(s["nbytes"])
            if s.get("total_bytes"):
                amount += f" of {human_bytes(s['total_bytes'])}"
            parts.append(amount)
        parts.append(human_elapsed(self.clock() - self.started))
        return ", ".join(parts)

    def update(self, *, stage: str, done: int | None = None, total: int | None = None, unit: str = "",
               nbytes: int | None = None, total_bytes: int | None = None) -> None:
        self.state = dict(stage=stage, done=done, total=total, unit=unit, nbytes=nbytes, total_bytes=total_bytes)
        now = self.clock()
        new_stage = stage != self.last_stage
        if self.live:
            if new_stage or now - self.last_time >= 0.1:
                self._draw(self.render())
                self.last_time = now
        elif now - self.last_time >= self.interval:
            self.stream.write(self.render() + "\n")
            self.stream.flush()
            self.last_time = now
        self.last_stage = stage

    def _draw(self, text: str) -> None:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        # One column short of the width, so the line never wraps; 0 means unknown (a fresh pty).
        text = text[:max(columns - 1, 20)] if columns else text
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self.shown = text

    def message(self, text: str) -> None:
        if self.live and self.shown:
            self.stream.write("\r\x1b[K" + text + "\n")
            self._draw(self.shown)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def finish(self, text: str | None = None) -> None:
        if self.pending:
            self.message(self.pending)
            self.pending = ""
        if self.live and self.shown:
            self.stream.write("\r\x1b[K")
            self.shown = ""
        if text:
            self.stream.write(text + "\n")
        self.stream.flush()

    # A text stream, for code that prints lines (`print(..., file=progress)`).
    def write(self, data: str) -> int:
        self.pending += data
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self.message(line)
        return len(data)

    def flush(self) -> None:
        pass


class CountingFile:
    """A binary file (or response) that reports the bytes read or written
    through it to `on_bytes`, as the running position: after a seek it counts
    from the new position, so a reader of a tar that skips members still
    shows how far into the file it is."""

    def __init__(self, raw: BinaryIO, on_bytes: Callable[[int], None], *, start: int = 0) -> None:
        self.raw = raw
        self.on_bytes = on_bytes
        self.count = start

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if data:
            self.count += len(data)
            self.on_bytes(self.count)
        return data

    def write(self, data: bytes) -> int:
        written = self.raw.write(data)
        self.count += len(data) if written is None else written
        self.on_bytes(self.count)
        return written

    def seek(self, offset: int, whence: int = 0) -> int:
        self.count = self.raw.seek(offset, whence)
        return self.count

    def tell(self) -> int:
        return self.raw.tell()

    def __getattr__(self, name: str):
        return getattr(self.raw, name)
