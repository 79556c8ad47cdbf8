"""A region's business calendar as data: storable as JSON, passed in workflow payloads.

The rules that read it (add business time, time between, next opening) are in
``domain/calendar.py``; this module only describes and validates the shape::

    {"timezone": "Asia/Shanghai",
     "hours": {"mon": ["09:00-12:00", "13:00-18:00"], "tue": ["09:00-18:00"], ...},
     "holiday_country": "CN",
     "closed_dates": ["2026-12-24"],
     "extra_working_dates": ["2026-10-10"]}

A weekday missing from ``hours`` is closed. ``"00:00-24:00"`` on all seven days is 24x7.
"""

from datetime import date
from enum import StrEnum
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Weekday(StrEnum):
    """Weekdays in ``date.weekday()`` order (Monday = 0)."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def index(self) -> int:
        return list(Weekday).index(self)


def _minutes(text: str) -> int:
    hh, sep, mm = text.partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2:
        raise ValueError(f"time must be HH:MM, got {text!r}")
    value = int(hh) * 60 + int(mm)
    if int(mm) >= 60 or value > 24 * 60:
        raise ValueError(f"time must be between 00:00 and 24:00, got {text!r}")
    return value


class WorkInterval(BaseModel):
    """Working time on one day, wall clock in the calendar's timezone, half-open [start, end).

    ``end`` may be ``"24:00"`` (midnight at the end of the day). Also accepted as the
    string ``"09:00-18:00"``. An overnight shift is two intervals: ``22:00-24:00`` on one
    day and ``00:00-06:00`` on the next; they join into one stretch of working time.
    """

    model_config = ConfigDict(frozen=True)

    start: str = Field(examples=["09:00"])
    end: str = Field(examples=["18:00"])

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            start, sep, end = data.partition("-")
            if not sep:
                raise ValueError(f"interval must be 'HH:MM-HH:MM', got {data!r}")
            return {"start": start.strip(), "end": end.strip()}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> "WorkInterval":
        if self.start_minute >= self.end_minute:
            raise ValueError(f"interval {self.start}-{self.end} must end after it starts")
        return self

    @property
    def start_minute(self) -> int:
        return _minutes(self.start)

    @property
    def end_minute(self) -> int:
        return _minutes(self.end)

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


def _check_day(intervals: list[WorkInterval], where: str) -> list[WorkInterval]:
    ordered = sorted(intervals, key=lambda i: i.start_minute)
    for a, b in pairwise(ordered):
        if b.start_minute < a.end_minute:
            raise ValueError(f"{where}: intervals {a} and {b} overlap")
    return ordered


class BusinessCalendar(BaseModel):
    """Working hours per weekday in an IANA timezone, minus public holidays and closed dates,
    plus make-up working dates (调休) and per-date special hours.

    Precedence for one local date, first match wins:

    1. ``special_hours[date]`` — exactly those intervals (``[]`` = closed);
    2. ``closed_dates`` — closed;
    3. ``extra_working_dates`` — the hours of ``extra_working_hours_from`` (default Monday's);
    4. a public holiday of ``holiday_country``/``holiday_subdivision`` — closed;
    5. an officially announced weekend working day of that country (when
       ``holiday_workdays``; China publishes them with its holiday schedule) — treated as 3.;
    6. ``hours[weekday]``.
    """

    model_config = ConfigDict(frozen=True)

    name: str = ""
    timezone: str = Field(examples=["Asia/Shanghai", "Europe/Berlin"])
    hours: dict[Weekday, list[WorkInterval]] = Field(
        description="working intervals per weekday; a missing weekday is closed"
    )
    holiday_country: str | None = Field(
        default=None, description="ISO country code for the `holidays` package, e.g. 'CN'"
    )
    holiday_subdivision: str | None = Field(default=None, examples=["BY"])
    holiday_workdays: bool = Field(
        default=True,
        description="also work the country's announced weekend make-up days (holidays' weekend_workdays)",
    )
    closed_dates: list[date] = Field(default_factory=list)
    extra_working_dates: list[date] = Field(default_factory=list)
    extra_working_hours_from: Weekday = Weekday.MON
    special_hours: dict[date, list[WorkInterval]] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @field_validator("holiday_country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.upper() not in holidays.list_supported_countries():
            raise ValueError(f"the holidays package has no country {value!r}")
        return value.upper()

    @model_validator(mode="after")
    def _consistent(self) -> "BusinessCalendar":
        for day, intervals in self.hours.items():
            _check_day(intervals, day.value)
        for day, intervals in self.special_hours.items():
            _check_day(intervals, day.isoformat())
        if not any(self.hours.values()):
            raise ValueError("a calendar needs working hours on at least one weekday")
        if not self.hours.get(self.extra_working_hours_from):
            raise ValueError(f"extra_working_hours_from={self.extra_working_hours_from.value} has no hours")
        both = sorted(set(self.closed_dates) & set(self.extra_working_dates))
        if both:
            raise ValueError(f"dates both closed and extra working: {[d.isoformat() for d in both]}")
        if self.holiday_subdivision and not self.holiday_country:
            raise ValueError("holiday_subdivision needs holiday_country")
        return self

    # -- convenient constructors -------------------------------------------------------

    @classmethod
    def weekly(
        cls,
        timezone: str,
        intervals: str | list[str] = "09:00-18:00",
        days: str = "mon-fri",
        **kwargs: Any,
    ) -> "BusinessCalendar":
        """The same intervals on a range of weekdays, e.g. ``weekly("Asia/Shanghai",
        ["09:00-12:00", "13:00-18:00"], "mon-fri", holiday_country="CN")``."""
        first, _, last = days.partition("-")
        lo, hi = Weekday(first).index, Weekday(last or first).index
        spec = [intervals] if isinstance(intervals, str) else list(intervals)
        week = {d: spec for d in Weekday if lo <= d.index <= hi}
        return cls.model_validate({"timezone": timezone, "hours": week, **kwargs})

    @classmethod
    def always_open(cls, timezone: str = "UTC", **kwargs: Any) -> "BusinessCalendar":
        """24x7: every hour of every day (holidays still apply if a country is given)."""
        return cls.weekly(timezone, "00:00-24:00", "mon-sun", **kwargs)
