"""India's clock: the desk's trading day. India has kept UTC+05:30 all year since 1945, so a fixed
offset is exact and needs no tz database (Windows ships none)."""

from __future__ import annotations

import datetime as dt

IST = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
IST_OFFSET_S = 19_800
_SECONDS_PER_DAY = 86_400
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def ist_day_number(ts_ns: int) -> int:
    """Days since 1970-01-01 in India for an epoch-nanosecond timestamp (integer maths: hot loops use it)."""
    return (ts_ns // 1_000_000_000 + IST_OFFSET_S) // _SECONDS_PER_DAY


def day_from_number(day_number: int) -> dt.date:
    return dt.date.fromordinal(_EPOCH_ORDINAL + day_number)


def ist_day(ts_ns: int) -> dt.date:
    """The calendar day in India of an epoch-nanosecond timestamp."""
    return day_from_number(ist_day_number(ts_ns))
