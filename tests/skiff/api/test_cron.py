"""Cron schedules: parsing (with the field named when it fails) and next
times, including DST in a time zone."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from skiff.api import cron

UTC = timezone.utc
NY = ZoneInfo("America/New_York")


def _next(spec, after, tz=UTC, n=1):
    s = cron.parse(spec, tz=tz)
    out, t = [], after
    for _ in range(n):
        t = s.next(t)
        out.append(t)
    return out


@pytest.mark.parametrize("spec, after, expected", [
    ("* * * * *", datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC), [datetime(2026, 1, 1, 10, 1, tzinfo=UTC)]),
    ("*/15 * * * *", datetime(2026, 1, 1, 10, 1, tzinfo=UTC),
     [datetime(2026, 1, 1, 10, 15, tzinfo=UTC), datetime(2026, 1, 1, 10, 30, tzinfo=UTC)]),
    ("0 9-17/4 * * MON-FRI", datetime(2026, 1, 2, 14, 0, tzinfo=UTC),   # a Friday
     [datetime(2026, 1, 2, 17, 0, tzinfo=UTC), datetime(2026, 1, 5, 9, 0, tzinfo=UTC)]),
    ("@hourly", datetime(2026, 1, 1, 10, 0, tzinfo=UTC), [datetime(2026, 1, 1, 11, 0, tzinfo=UTC)]),
    ("@monthly", datetime(2026, 1, 15, tzinfo=UTC), [datetime(2026, 2, 1, tzinfo=UTC)]),
    ("0 0 29 2 *", datetime(2026, 1, 1, tzinfo=UTC), [datetime(2028, 2, 29, tzinfo=UTC)]),
    ("0 0 1,15 * 0", datetime(2026, 3, 1, 0, 0, tzinfo=UTC),   # 1st/15th OR Sundays
     [datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC)]),
    ("30 4 * JAN,jul 7", datetime(2026, 6, 30, tzinfo=UTC), [datetime(2026, 7, 5, 4, 30, tzinfo=UTC)]),  # Sundays
    ("5/20 * * * *", datetime(2026, 1, 1, 0, 6, tzinfo=UTC), [datetime(2026, 1, 1, 0, 25, tzinfo=UTC)]),
])
def test_next_times(spec, after, expected):
    assert _next(spec, after, n=len(expected)) == expected


def test_time_zone_and_dst():
    # 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer.
    assert _next("0 9 * * *", datetime(2026, 3, 7, 15, 0, tzinfo=UTC), NY, n=2) == [
        datetime(2026, 3, 8, 9, 0, tzinfo=NY), datetime(2026, 3, 9, 9, 0, tzinfo=NY)]
    assert datetime(2026, 3, 9, 9, 0, tzinfo=NY).astimezone(UTC).hour == 13
    # 02:30 does not exist on 2026-03-08 in New York: that day is skipped.
    (t,) = _next("30 2 * * *", datetime(2026, 3, 7, 12, 0, tzinfo=NY), NY)
    assert t == datetime(2026, 3, 9, 2, 30, tzinfo=NY)
    # 01:30 happens twice on 2026-11-01: it runs once, at the first (EDT).
    first, second = _next("30 1 * * *", datetime(2026, 10, 31, 12, 0, tzinfo=NY), NY, n=2)
    assert first.astimezone(UTC) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert second.astimezone(UTC) == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize("spec, words", [
    ("61 * * * *", "minute value 61 is out of range (0-59)"),
    ("* * *", "expected exactly 5 fields"),
    ("* 25 * * *", "hour value 25"),
    ("*/0 * * * *", "invalid step"),
    ("5-1 * * * *", "beyond end of range"),
    ("@fortnightly", "unrecognized descriptor"),
    ("TZ=UTC * * * * *", "use timeZone field instead"),
    ("* * * FOO *", "failed to parse int from FOO"),
])
def test_bad_schedules_name_the_problem(spec, words):
    with pytest.raises(cron.CronError, match=words.replace("(", r"\(").replace(")", r"\)")):
        cron.parse(spec)


def test_times_between():
    s = cron.parse("*/20 * * * *")
    assert len(s.times(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 2, 0, tzinfo=UTC))) == 6


def test_unknown_zone():
    with pytest.raises(cron.CronError, match="unknown time zone 'Mars/Olympus'"):
        cron.zone("Mars/Olympus")
