"""Business calendars: SLA arithmetic over working hours, holidays, 调休 and DST."""

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.calendar import (
    add_business_time,
    business_time_between,
    deadlines,
    freeze_holidays,
    is_working_time,
    next_opening,
)
from models.calendar import BusinessCalendar, Weekday

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NY = ZoneInfo("America/New_York")
H = timedelta(hours=1)
M = timedelta(minutes=1)

OFFICE = BusinessCalendar.weekly("Asia/Shanghai", "09:00-18:00")
CHINA = BusinessCalendar.weekly("Asia/Shanghai", ["09:00-12:00", "13:00-18:00"], holiday_country="CN")


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


# -- the cases the issue names ------------------------------------------------------------


def test_friday_1730_with_two_working_hours_is_due_monday_1030_same_tz():
    created = sh(2026, 11, 27, 17, 30)
    assert created.strftime("%A") == "Friday"
    due = add_business_time(OFFICE, created, 2 * H)
    assert due == sh(2026, 11, 30, 10, 30)
    assert due.strftime("%A %H:%M") == "Monday 10:30"
    assert due.tzinfo == SH and due.utcoffset() == 8 * H  # same wall clock as the region
    assert business_time_between(OFFICE, created, due) == 2 * H
    assert not is_working_time(OFFICE, sh(2026, 11, 28, 10, 0))  # Saturday


def test_china_national_day_2026_is_skipped():
    # 2026-09-30 (Wed) 17:00: one working hour that day, then Oct 1-7 off, Oct 8 (Thu) resumes.
    created = sh(2026, 9, 30, 17, 0)
    assert add_business_time(CHINA, created, 2 * H) == sh(2026, 10, 8, 10, 0)
    for day in range(1, 8):
        assert not is_working_time(CHINA, sh(2026, 10, day, 10, 0)), f"Oct {day}"
    assert business_time_between(CHINA, sh(2026, 10, 1), sh(2026, 10, 8, 9, 0)) == timedelta(0)
    assert next_opening(CHINA, sh(2026, 10, 3, 15, 0)) == sh(2026, 10, 8, 9, 0)
    # the Mid-Autumn Festival (Fri 2026-09-25) is a holiday too
    assert add_business_time(CHINA, sh(2026, 9, 24, 17, 0), 2 * H) == sh(2026, 9, 28, 10, 0)


def test_tiaoxiu_makeup_saturday_configured_as_extra_working_day():
    # 2026-10-10 is a Saturday worked in exchange for the National Day week (调休).
    plain = CHINA.model_copy(update={"holiday_workdays": False})
    configured = plain.model_copy(update={"extra_working_dates": [date(2026, 10, 10)]})
    friday = sh(2026, 10, 9, 17, 0)
    assert add_business_time(plain, friday, 2 * H) == sh(2026, 10, 12, 10, 0)  # Monday
    assert add_business_time(configured, friday, 2 * H) == sh(2026, 10, 10, 10, 0)  # Saturday
    assert is_working_time(configured, sh(2026, 10, 10, 9, 0))
    assert not is_working_time(configured, sh(2026, 10, 10, 12, 30))  # Monday's lunch break too
    assert business_time_between(configured, sh(2026, 10, 10), sh(2026, 10, 11)) == 8 * H


def test_makeup_days_use_the_configured_weekday_hours():
    cal = BusinessCalendar.model_validate(
        {
            "timezone": "Asia/Shanghai",
            "hours": {"mon": ["09:00-18:00"], "tue": ["09:00-18:00"], "fri": ["10:00-14:00"]},
            "extra_working_dates": ["2026-10-10"],
            "extra_working_hours_from": "fri",
        }
    )
    assert business_time_between(cal, sh(2026, 10, 10), sh(2026, 10, 11)) == 4 * H
    assert next_opening(cal, sh(2026, 10, 10, 7, 0)) == sh(2026, 10, 10, 10, 0)


def test_official_makeup_days_come_from_the_holidays_package_by_default():
    assert CHINA.holiday_workdays
    for makeup in (sh(2026, 9, 20, 10, 0), sh(2026, 10, 10, 10, 0)):  # Sunday, Saturday
        assert is_working_time(CHINA, makeup)
    assert not is_working_time(CHINA, sh(2026, 10, 11, 10, 0))  # an ordinary Sunday
    assert add_business_time(CHINA, sh(2026, 10, 9, 17, 0), 2 * H) == sh(2026, 10, 10, 10, 0)


def test_lunch_break_is_not_working_time():
    monday = (2026, 11, 30)
    assert add_business_time(CHINA, sh(*monday, 11, 30), H) == sh(*monday, 13, 30)
    assert add_business_time(CHINA, sh(*monday, 12, 15), 30 * M) == sh(*monday, 13, 30)
    assert business_time_between(CHINA, sh(*monday, 11, 0), sh(*monday, 14, 0)) == 2 * H
    assert not is_working_time(CHINA, sh(*monday, 12, 30))
    assert is_working_time(CHINA, sh(*monday, 13, 0))  # openings are inclusive
    assert not is_working_time(CHINA, sh(*monday, 12, 0))  # closings are exclusive
    assert next_opening(CHINA, sh(*monday, 12, 30)) == sh(*monday, 13, 0)
    assert business_time_between(CHINA, sh(*monday), sh(2026, 12, 1)) == 8 * H


def test_24x7_counts_wall_time():
    cal = BusinessCalendar.always_open("Asia/Shanghai")
    start = sh(2026, 11, 30, 10, 0)
    assert add_business_time(cal, start, 50 * H) == sh(2026, 12, 2, 12, 0)
    assert business_time_between(cal, start, start + timedelta(days=9, minutes=7)) == timedelta(days=9, minutes=7)
    assert is_working_time(cal, sh(2026, 12, 5, 23, 59, 59))
    assert is_working_time(cal, sh(2026, 12, 6, 0, 0))  # midnight joins the days


def test_dst_24x7_counts_real_elapsed_time():
    cal = BusinessCalendar.always_open("Europe/Berlin")
    # spring forward 2026-03-29 02:00 → 03:00: that Sunday is 23 hours long
    assert add_business_time(cal, berlin(2026, 3, 28, 12), 24 * H) == berlin(2026, 3, 29, 13)
    assert business_time_between(cal, berlin(2026, 3, 29), berlin(2026, 3, 30)) == 23 * H
    # fall back 2026-10-25 03:00 → 02:00: that Sunday is 25 hours long
    assert add_business_time(cal, berlin(2026, 10, 24, 12), 24 * H) == berlin(2026, 10, 25, 11)
    assert business_time_between(cal, berlin(2026, 10, 25), berlin(2026, 10, 26)) == 25 * H
    # result is in the calendar's zone with the right offset after the change
    assert add_business_time(cal, berlin(2026, 3, 28, 12), 24 * H).utcoffset() == 2 * H


def test_dst_office_hours_follow_the_wall_clock():
    cal = BusinessCalendar.weekly("Europe/Berlin", "09:00-18:00", holiday_country="DE", holiday_subdivision="BY")
    # Friday 17:00 CET + 2 h → Monday 10:00 CEST (the wall clock, not 09:00 + 1 h drift)
    due = add_business_time(cal, berlin(2026, 3, 27, 17), 2 * H)
    assert due == berlin(2026, 3, 30, 10) and due.utcoffset() == 2 * H
    assert business_time_between(cal, berlin(2026, 3, 23), berlin(2026, 3, 30)) == 45 * H
    assert business_time_between(cal, berlin(2026, 10, 19), berlin(2026, 10, 26)) == 45 * H


def test_dst_night_shift_through_the_gap_and_the_repeat():
    cal = BusinessCalendar.weekly("Europe/Berlin", "01:00-04:00", "mon-sun")
    # 01:00 CET – 04:00 CEST is 2 real hours (02:00–03:00 does not exist)
    assert business_time_between(cal, berlin(2026, 3, 29), berlin(2026, 3, 30)) == 2 * H
    assert add_business_time(cal, berlin(2026, 3, 29, 1), 90 * M) == berlin(2026, 3, 29, 3, 30)
    # 01:00 CEST – 04:00 CET is 4 real hours (02:00–03:00 happens twice)
    assert business_time_between(cal, berlin(2026, 10, 25), berlin(2026, 10, 26)) == 4 * H
    first_2am = berlin(2026, 10, 25, 2, 0)  # fold=0: the first occurrence (CEST)
    second_2am = berlin(2026, 10, 25, 2, 0).replace(fold=1)  # the second (CET)
    assert business_time_between(cal, first_2am, second_2am) == H
    assert add_business_time(cal, berlin(2026, 10, 25, 1), 2 * H) == second_2am
    assert add_business_time(cal, berlin(2026, 10, 25, 1), 2 * H).utcoffset() == H


def test_overnight_shift_across_midnight_is_one_stretch():
    cal = BusinessCalendar.model_validate(
        {"timezone": "America/New_York", "hours": {"mon": ["22:00-24:00"], "tue": ["00:00-06:00"]}}
    )
    monday_night = datetime(2026, 11, 30, 23, 0, tzinfo=NY)
    assert add_business_time(cal, monday_night, 3 * H) == datetime(2026, 12, 1, 2, 0, tzinfo=NY)
    assert is_working_time(cal, datetime(2026, 12, 1, 0, 0, tzinfo=NY))
    assert add_business_time(cal, datetime(2026, 12, 1, 5, 0, tzinfo=NY), 2 * H) == datetime(
        2026, 12, 7, 23, 0, tzinfo=NY
    )


def test_start_outside_hours_begins_at_next_opening_and_closing_time_is_kept():
    saturday = sh(2026, 11, 28, 15, 0)
    assert add_business_time(OFFICE, saturday, 30 * M) == sh(2026, 11, 30, 9, 30)
    assert next_opening(OFFICE, saturday) == sh(2026, 11, 30, 9, 0)
    assert next_opening(OFFICE, sh(2026, 11, 30, 11, 0)) == sh(2026, 11, 30, 11, 0)
    # using up Friday's last minute is due Friday 18:00, not Monday 09:00
    assert add_business_time(OFFICE, sh(2026, 11, 27, 16, 0), 2 * H) == sh(2026, 11, 27, 18, 0)
    # zero duration changes nothing, even outside working time
    assert add_business_time(OFFICE, saturday, timedelta(0)) == saturday


def test_inputs_in_any_zone_give_the_same_instants():
    created_utc = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)  # Friday 17:30 in Shanghai
    due = add_business_time(OFFICE, created_utc, 2 * H)
    assert due == sh(2026, 11, 30, 10, 30) and due.tzinfo == SH
    assert add_business_time(OFFICE, created_utc.astimezone(NY), 2 * H) == due


def test_holidays_by_subdivision_and_closed_and_special_dates():
    bavaria = BusinessCalendar.weekly("Europe/Berlin", holiday_country="DE", holiday_subdivision="BY")
    berlin_state = BusinessCalendar.weekly("Europe/Berlin", holiday_country="DE", holiday_subdivision="BE")
    epiphany = berlin(2026, 1, 6, 10)  # Tuesday: a holiday in Bavaria only
    assert not is_working_time(bavaria, epiphany)
    assert is_working_time(berlin_state, epiphany)
    cal = BusinessCalendar.model_validate(
        {**OFFICE.model_dump(), "closed_dates": ["2026-12-31"], "special_hours": {"2026-12-24": ["09:00-12:00"]}}
    )
    assert business_time_between(cal, sh(2026, 12, 24), sh(2026, 12, 25)) == 3 * H
    assert business_time_between(cal, sh(2026, 12, 31), sh(2027, 1, 1)) == timedelta(0)
    assert add_business_time(cal, sh(2026, 12, 30, 17, 0), 2 * H) == sh(2027, 1, 1, 10, 0)


def test_deadlines_at_shares_of_the_target():
    monday = sh(2026, 11, 30, 9, 0)
    half, eighty, full = deadlines(OFFICE, monday, 8 * H, [0.5, 0.8, 1.0])
    assert (half, eighty, full) == (sh(2026, 11, 30, 13, 0), sh(2026, 11, 30, 15, 24), sh(2026, 11, 30, 17, 0))
    # a reminder share may cross the weekend like the deadline
    assert deadlines(OFFICE, sh(2026, 11, 27, 17, 30), 2 * H, [0.5, 1.0]) == [
        sh(2026, 11, 30, 9, 30),
        sh(2026, 11, 30, 10, 30),
    ]
    with pytest.raises(ValueError):
        deadlines(OFFICE, monday, H, [-0.1])


def test_pause_excludes_the_time_waiting_on_the_customer():
    start, target = sh(2026, 11, 30, 9, 0), 8 * H
    pause, resume = sh(2026, 11, 30, 11, 0), sh(2026, 12, 2, 14, 0)  # 2 h used, then 2 days waiting
    used = business_time_between(OFFICE, start, pause)
    deadline = add_business_time(OFFICE, resume, target - used)
    assert used == 2 * H
    assert deadline == sh(2026, 12, 3, 11, 0)  # 4 h Wednesday afternoon + 2 h Thursday
    assert used + business_time_between(OFFICE, resume, deadline) == target


def test_between_is_antisymmetric_and_rejects_naive_datetimes():
    a, b = sh(2026, 11, 27, 17, 0), sh(2026, 11, 30, 10, 0)
    assert business_time_between(OFFICE, a, b) == 2 * H
    assert business_time_between(OFFICE, b, a) == -2 * H
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_time(OFFICE, datetime(2026, 11, 27, 17, 0), H)
    with pytest.raises(ValueError, match="negative"):
        add_business_time(OFFICE, a, -H)


def test_a_30_business_day_target_steps_by_intervals_not_minutes():
    start, target = sh(2026, 9, 1, 10, 0), 30 * 8 * H
    due = add_business_time(CHINA, start, target)
    # September: 21 working days + Sun 9/20 make-up day; 9/25 and Oct 1-7 off; Sat 10/10 worked
    assert due == sh(2026, 10, 19, 10, 0)
    assert business_time_between(CHINA, start, due) == target
    began = time.perf_counter()
    for i in range(200):
        add_business_time(CHINA, start + i * M, target)
    assert (time.perf_counter() - began) / 200 < 0.002  # ~40 µs here; generous for CI


def test_frozen_holidays_give_the_same_answers_without_the_package():
    frozen = freeze_holidays(CHINA, 2025, 2027)
    assert frozen.holiday_country is None
    assert date(2026, 10, 1) in frozen.closed_dates and date(2026, 10, 10) in frozen.extra_working_dates
    stored = BusinessCalendar.model_validate_json(frozen.model_dump_json())
    for day in range(0, 400, 3):
        start = sh(2026, 1, 1, 8, 17) + timedelta(days=day, hours=day % 11)
        assert add_business_time(stored, start, 13 * H) == add_business_time(CHINA, start, 13 * H)


def test_calendar_spec_round_trips_as_json_and_validates():
    cal = BusinessCalendar.model_validate(
        {
            "name": "east",
            "timezone": "Asia/Shanghai",
            "hours": {"mon": ["09:00-12:00", {"start": "13:00", "end": "18:00"}], "sat": ["10:00-16:00"]},
            "holiday_country": "cn",
            "extra_working_dates": ["2026-10-10"],
        }
    )
    assert cal.holiday_country == "CN"
    assert cal.hours[Weekday.MON][1].start == "13:00"
    assert BusinessCalendar.model_validate_json(cal.model_dump_json()) == cal
    bad = [
        {"timezone": "Mars/Olympus", "hours": {"mon": ["09:00-18:00"]}},
        {"timezone": "UTC", "hours": {"mon": ["09:00-12:00", "11:00-18:00"]}},  # overlap
        {"timezone": "UTC", "hours": {"mon": ["18:00-09:00"]}},  # backwards
        {"timezone": "UTC", "hours": {"mon": ["09:00-24:30"]}},
        {"timezone": "UTC", "hours": {}},  # never open
        {"timezone": "UTC", "hours": {"mon": ["09:00-18:00"]}, "holiday_country": "XX"},
        {
            "timezone": "UTC",
            "hours": {"mon": ["09:00-18:00"]},
            "closed_dates": ["2026-10-10"],
            "extra_working_dates": ["2026-10-10"],
        },
    ]
    for spec in bad:
        with pytest.raises(ValidationError):
            BusinessCalendar.model_validate(spec)


# -- properties ---------------------------------------------------------------------------

CALENDARS = {
    "china-lunch-holidays": CHINA,
    "shanghai-office": OFFICE,
    "berlin-office-dst": BusinessCalendar.weekly(
        "Europe/Berlin", ["08:30-12:00", "12:45-17:15"], holiday_country="DE", holiday_subdivision="BY"
    ),
    "berlin-24x7-dst": BusinessCalendar.always_open("Europe/Berlin"),
    "berlin-night-dst": BusinessCalendar.weekly("Europe/Berlin", ["00:00-03:30", "22:00-24:00"], "mon-sun"),
    "new-york-overnight": BusinessCalendar.model_validate(
        {
            "timezone": "America/New_York",
            "hours": {"mon": ["22:00-24:00"], "tue": ["00:00-06:00"], "sat": ["01:30-02:30"]},
            "holiday_country": "US",
        }
    ),
}

BASE = datetime(2025, 12, 1, tzinfo=UTC)
calendars = st.sampled_from(sorted(CALENDARS))
instants = st.integers(0, 400 * 86_400 * 10**6).map(lambda us: BASE + timedelta(microseconds=us))
zones = st.sampled_from([UTC, SH, BERLIN, NY])
durations = st.integers(0, 30 * 8 * 3600 * 10**6).map(lambda us: timedelta(microseconds=us))
short = st.one_of(durations, st.integers(0, 4 * 3600).map(lambda s: timedelta(seconds=s)))


@settings(max_examples=300, deadline=None)
@given(name=calendars, start=instants, zone=zones, d1=short, d2=short)
def test_adding_composes_exactly(name, start, zone, d1, d2):
    cal = CALENDARS[name]
    start = start.astimezone(zone)
    in_one_go = add_business_time(cal, start, d1 + d2)
    assert in_one_go == add_business_time(cal, add_business_time(cal, start, d1), d2)


@settings(max_examples=300, deadline=None)
@given(name=calendars, start=instants, d=short)
def test_time_between_inverts_adding(name, start, d):
    cal = CALENDARS[name]
    due = add_business_time(cal, start, d)
    assert due >= start
    assert business_time_between(cal, start, due) == d
    if d > timedelta(0):  # the last microsecond used was working time
        assert is_working_time(cal, due - timedelta(microseconds=1))
        assert add_business_time(cal, start, d - timedelta(microseconds=1)) < due


@settings(max_examples=200, deadline=None)
@given(name=calendars, a=instants, b=instants, c=instants)
def test_time_between_is_additive(name, a, b, c):
    cal = CALENDARS[name]
    between = business_time_between
    assert between(cal, a, b) + between(cal, b, c) == between(cal, a, c)
    assert timedelta(0) <= business_time_between(cal, min(a, c), max(a, c)) <= max(a, c) - min(a, c)


@settings(max_examples=200, deadline=None)
@given(name=calendars, t=instants)
def test_next_opening_is_the_first_working_instant(name, t):
    cal = CALENDARS[name]
    opening = next_opening(cal, t)
    assert opening >= t and is_working_time(cal, opening)
    assert business_time_between(cal, t, opening) == timedelta(0)
    assert (opening == t) == is_working_time(cal, t)
    # starting the clock at t or at the opening is the same
    assert add_business_time(cal, t, H) == add_business_time(cal, opening, H)


@settings(max_examples=100, deadline=None)
@given(name=calendars, start=instants, target=durations, shares=st.lists(st.floats(0, 1.5), max_size=4))
def test_deadlines_are_monotonic_in_share(name, start, target, shares):
    cal = CALENDARS[name]
    ordered = sorted(shares)
    instants_ = deadlines(cal, start, target, ordered)
    assert instants_ == sorted(instants_)
    assert instants_ == [add_business_time(cal, start, target * s) for s in ordered]
