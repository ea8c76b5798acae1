"""Cron schedules as a CronJob writes them: five fields (minute, hour, day of
month, month, day of week) with `*`, `?`, ranges `a-b`, steps `*/n` `a-b/n`
`a/n`, lists `a,b`, month and day names (JAN-DEC, SUN-SAT; 7 is Sunday too),
and the macros @yearly/@annually, @monthly, @weekly, @daily/@midnight, @hourly.
As in Vixie cron (and Kubernetes' robfig/cron), when both day of month and day
of week are restricted a day matching either runs.

`Schedule.next(after)` is the first run strictly after `after`, in the
schedule's time zone, by wall-clock time: a time that does not exist (the hour
skipped when DST starts) is not run that day; a time that happens twice (the
hour repeated when DST ends) runs once, at its first occurrence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), start=1)}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}
_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}), ("month", 1, 12, _MONTHS),
           ("day of week", 0, 7, _DAYS))
_SEARCH_DAYS = 366 * 5  # as robfig: nothing within five years means never


class CronError(ValueError):
    """A schedule that does not parse; the message names the field and the value."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]          # 0 = Sunday
    days_star: bool                   # day of month was * or ?
    weekdays_star: bool
    tz: tzinfo = timezone.utc

    def day_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow

    def next(self, after: datetime) -> datetime | None:
        """The first run strictly after `after` (an aware datetime), or None."""
        local = after.astimezone(self.tz)
        start = local.replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
        day = start.date()
        for _ in range(_SEARCH_DAYS):
            if self.day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        wall = datetime(day.year, day.month, day.day, hour, minute)
                        if wall < start:
                            continue
                        at = wall.replace(tzinfo=self.tz, fold=0)
                        if at.astimezone(timezone.utc).astimezone(self.tz).replace(tzinfo=None) != wall:
                            continue  # in the gap DST skips
                        if at > after:
                            return at
            day += timedelta(days=1)
        return None

    def times(self, after: datetime, until: datetime) -> list[datetime]:
        """Every run in (after, until], oldest first."""
        out = []
        t = self.next(after)
        while t is not None and t <= until:
            out.append(t)
            t = self.next(t)
        return out


def zone(name: str | None) -> tzinfo:
    """The time zone called `name` (an IANA name); None or "": the local zone."""
    if not name:
        return datetime.now().astimezone().tzinfo or timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {name!r}") from None


def parse(text: str, *, tz: tzinfo = timezone.utc) -> Schedule:
    spec = text.strip()
    if spec.startswith("TZ=") or spec.startswith("CRON_TZ="):
        raise CronError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if spec.startswith("@"):
        if spec not in MACROS:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = MACROS[spec]
    parts = spec.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}: {text!r}")
    sets = [_field(part, *meta) for part, meta in zip(parts, _FIELDS)]
    weekdays = frozenset(0 if d == 7 else d for d in sets[4])
    return Schedule(frozenset(sets[0]), frozenset(sets[1]), frozenset(sets[2]), frozenset(sets[3]), weekdays,
                    days_star=parts[2] in ("*", "?"), weekdays_star=parts[4] in ("*", "?"), tz=tz)


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not re.fullmatch(r"[0-9]+", text):
        raise CronError(f"failed to parse int from {text}: invalid syntax ({name})")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name} value {value} is out of range ({low}-{high})")
    return value


def _field(part: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    out: set[int] = set()
    for item in part.split(","):
        if not item:
            raise CronError(f"empty item in {name} field {part!r}")
        body, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not re.fullmatch(r"[0-9]+", step_text) or int(step_text) == 0:
                raise CronError(f"invalid step {step_text!r} in {name} field {part!r}")
            step = int(step_text)
        if body in ("*", "?"):
            first, last = low, (6 if name == "day of week" else high)
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if first > last:
                raise CronError(f"beginning of range ({first}) beyond end of range ({last}): {item}")
        else:
            first = _value(body, name, low, high, names)
            last = (6 if name == "day of week" else high) if slash else first
        out.update(range(first, last + 1, step))
    return out
