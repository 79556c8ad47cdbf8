"""Business time: SLA arithmetic over a region's working hours, holidays and make-up days.

Pure and deterministic, so workflow code may call it: no clock, no I/O, no randomness.
Public holidays come from the ``holidays`` package (pure computation, cached per year).

Semantics (``docs/dispatch-and-sla.md`` has examples):

- Working time is a sequence of half-open instants ``[open, close)``; a wall-clock interval
  of a local date is converted to instants in the calendar's timezone, so a 24x7 day is
  23 h or 25 h long on a DST change. A wall time that does not exist (spring gap) is read
  with the offset before the change; an ambiguous one (autumn) as its first occurrence.
  Intervals are clipped so they never overlap, and touching intervals (``22:00-24:00``
  then ``00:00-06:00``) form one stretch.
- ``add_business_time(cal, start, d)`` is the earliest instant ``t >= start`` with
  ``business_time_between(cal, start, t) == d``: a start outside working hours begins at
  the next opening; a deadline that uses up a day's last minute is that day's closing
  time (Friday 18:00), not the next opening; a zero duration returns ``start``.
  Arithmetic is in integer microseconds, so it composes exactly:
  ``add(add(s, d1), d2) == add(s, d1 + d2)`` and ``between(s, add(s, d)) == d``.
- Every returned datetime is timezone-aware in the calendar's timezone (compare them as
  instants; ``.astimezone(UTC)`` if you need UTC).

Pausing (waiting on the customer) is the caller's: ``used = business_time_between(cal,
start, pause_start)``; after resuming at ``r``, ``deadline = add_business_time(cal, r,
target - used)``.
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays  # at import time, so a sandbox passing this module through has it loaded

from models.calendar import BusinessCalendar, Weekday, WorkInterval

_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_DAY = timedelta(days=1)
_MAX_CLOSED_DAYS = 3660  # give up after ten years without a single working minute

Span = tuple[int, int]  # [open, close) in microseconds since the epoch (UTC)


def _to_us(dt: datetime) -> int:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is required, got {dt!r}")
    return (dt - _EPOCH) // _US


def _from_us(us: int, tz: ZoneInfo) -> datetime:
    return (_EPOCH + timedelta(microseconds=us)).astimezone(tz)


@lru_cache(maxsize=256)
def _holiday_year(country: str, subdivision: str | None, year: int) -> tuple[frozenset[date], frozenset[date]]:
    """(public holidays, announced weekend working days) of one year."""
    book = holidays.country_holidays(country, subdiv=subdivision, years=(year - 1, year, year + 1))
    closed = frozenset(d for d in book if d.year == year)
    working = frozenset(d for d in getattr(book, "weekend_workdays", ()) if d.year == year)
    return closed, working


def _seconds(intervals: Sequence[WorkInterval]) -> tuple[Span, ...]:
    ordered = sorted(intervals, key=lambda i: i.start_minute)
    return tuple((i.start_minute * 60, i.end_minute * 60) for i in ordered)


class _Compiled:
    """A calendar turned into lookup tables, with a cache of each date's working spans."""

    def __init__(self, cal: BusinessCalendar) -> None:
        self.tz = ZoneInfo(cal.timezone)
        self.week = tuple(_seconds(cal.hours.get(d, [])) for d in Weekday)
        self.closed = frozenset(cal.closed_dates)
        self.extra = frozenset(cal.extra_working_dates)
        self.extra_hours = self.week[cal.extra_working_hours_from.index]
        self.special = {d: _seconds(v) for d, v in cal.special_hours.items()}
        self.country = cal.holiday_country
        self.subdivision = cal.holiday_subdivision
        self.official_workdays = cal.holiday_workdays
        self._days: dict[date, tuple[Span, ...]] = {}

    def local_hours(self, d: date) -> tuple[Span, ...]:
        """Working intervals of a local date, in seconds of the wall clock."""
        if d in self.special:
            return self.special[d]
        if d in self.closed:
            return ()
        if d in self.extra:
            return self.extra_hours
        if self.country:
            days_off, workdays = _holiday_year(self.country, self.subdivision, d.year)
            if d in days_off:
                return ()
            if self.official_workdays and d in workdays:
                return self.extra_hours
        return self.week[d.weekday()]

    def _wall(self, d: date, seconds: int) -> int:
        naive = datetime(d.year, d.month, d.day) + timedelta(seconds=seconds)
        return _to_us(naive.replace(tzinfo=self.tz))

    def spans(self, d: date) -> tuple[Span, ...]:
        """Working spans of a local date as instants, clipped to the date and never overlapping."""
        cached = self._days.get(d)
        if cached is not None:
            return cached
        hours = self.local_hours(d)
        out: list[Span] = []
        if hours:
            prev, day_end = self._wall(d, 0), self._wall(d, 86400)
            for s, e in hours:
                su, eu = max(self._wall(d, s), prev), min(self._wall(d, e), day_end)
                if eu > su:
                    out.append((su, eu))
                    prev = eu
        result = tuple(out)
        if len(self._days) > 50_000:
            self._days.clear()
        self._days[d] = result
        return result

    def spans_from(self, t: int) -> Iterator[Span]:
        """Working spans in time order, starting with the first one that ends after ``t``."""
        d = _from_us(t, self.tz).date() - _ONE_DAY
        closed_run = 0
        while True:
            spans = self.spans(d)
            for s, e in spans:
                if e > t:
                    yield s, e
            closed_run = 0 if spans else closed_run + 1
            if closed_run > _MAX_CLOSED_DAYS:
                raise ValueError(f"no working time within {_MAX_CLOSED_DAYS} days after {d}")
            d += _ONE_DAY


@lru_cache(maxsize=64)
def _compile_json(spec: str) -> _Compiled:
    return _Compiled(BusinessCalendar.model_validate_json(spec))


def _compiled(cal: BusinessCalendar) -> _Compiled:
    return _compile_json(cal.model_dump_json())


# -- public API -------------------------------------------------------------------------


def add_business_time(cal: BusinessCalendar, start: datetime, duration: timedelta) -> datetime:
    """The instant when ``duration`` of business time has elapsed after ``start``."""
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got {duration}")
    c = _compiled(cal)
    t, remaining = _to_us(start), duration // _US
    if remaining == 0:
        return _from_us(t, c.tz)
    for s, e in c.spans_from(t):
        s = max(s, t)
        if remaining <= e - s:
            return _from_us(s + remaining, c.tz)
        remaining -= e - s
    raise AssertionError("unreachable: spans_from never ends")  # pragma: no cover


def business_time_between(cal: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    """Business time in ``[a, b)``; negative when ``b`` is before ``a``."""
    ta, tb = _to_us(a), _to_us(b)
    if tb < ta:
        return -business_time_between(cal, b, a)
    total = 0
    for s, e in _compiled(cal).spans_from(ta):
        if s >= tb:
            break
        total += min(e, tb) - max(s, ta)
    return timedelta(microseconds=total)


def is_working_time(cal: BusinessCalendar, dt: datetime) -> bool:
    """Whether ``dt`` falls inside a working interval (openings inclusive, closings exclusive)."""
    t = _to_us(dt)
    s, _ = next(_compiled(cal).spans_from(t))
    return s <= t


def next_opening(cal: BusinessCalendar, dt: datetime) -> datetime:
    """``dt`` itself during working time, otherwise the start of the next working interval."""
    c = _compiled(cal)
    t = _to_us(dt)
    s, _ = next(c.spans_from(t))
    return _from_us(max(s, t), c.tz)


def deadlines(
    cal: BusinessCalendar,
    start: datetime,
    target: timedelta,
    shares: Sequence[float] = (0.5, 0.8, 1.0),
) -> list[datetime]:
    """The instants at which each share of ``target`` business time has elapsed (in the
    order given), e.g. reminders at 50 % and 80 % and the deadline at 100 %."""
    if any(share < 0 for share in shares):
        raise ValueError(f"shares must not be negative, got {list(shares)}")
    return [add_business_time(cal, start, target * share) for share in shares]


def freeze_holidays(cal: BusinessCalendar, first_year: int, last_year: int) -> BusinessCalendar:
    """The same calendar with the package's holidays for ``first_year..last_year`` written out
    as ``closed_dates`` / ``extra_working_dates`` and ``holiday_country`` dropped.

    A workflow that keeps the frozen calendar in its state computes the same deadlines on
    replay even after the ``holidays`` package (which learns each year's Chinese schedule
    when it is announced) is upgraded. Outside the years given it knows no holidays.
    """
    if not cal.holiday_country:
        return cal
    closed, extra = set(cal.closed_dates), set(cal.extra_working_dates)
    for year in range(first_year, last_year + 1):
        days_off, workdays = _holiday_year(cal.holiday_country, cal.holiday_subdivision, year)
        closed |= {d for d in days_off if d not in extra}
        if cal.holiday_workdays:
            extra |= {d for d in workdays if d not in closed}
    return cal.model_copy(
        update={
            "holiday_country": None,
            "holiday_subdivision": None,
            "closed_dates": sorted(closed),
            "extra_working_dates": sorted(extra),
        }
    )


#: The pricing conditions ``conditions_at`` names (surcharge rules react to them).
NIGHT = "night"
HOLIDAY = "holiday"


def conditions_at(cal: BusinessCalendar, when: datetime) -> tuple[str, ...]:
    """The surcharge conditions of work done at ``when``, by the calendar's local date and time:

    - ``("holiday",)`` on a day with no working hours: a weekday the calendar does not work, a
      public holiday of its country, a closed date (a make-up working day is a working day);
    - ``("night",)`` on a working day, before its first opening or from its last closing on
      (a lunch break between two intervals is not night);
    - ``()`` otherwise.
    """
    _to_us(when)  # a naive datetime is refused, as everywhere here
    c = _compiled(cal)
    local = when.astimezone(c.tz)
    hours = c.local_hours(local.date())
    if not hours:
        return (HOLIDAY,)
    second = local.hour * 3600 + local.minute * 60 + local.second
    if second < hours[0][0] or second >= hours[-1][1]:
        return (NIGHT,)
    return ()
