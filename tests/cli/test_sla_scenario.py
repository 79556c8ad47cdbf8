"""``ticketflow sla-scenario``: the real TicketWorkflow on the time-skipping server, nobody acting;
the printed times are checked against times worked out by hand from the calendars."""

import json
from pathlib import Path

import yaml

from tests.cli.conftest import invoke


def test_a_friday_evening_ticket_counts_from_monday_opening():
    """general: the task's SLA is respond in 2 h, resolve in 8 h (templates/general.yaml), with
    the default policy: reminders at 50 % and 80 %, breach at 100 %, escalations at 150 % and
    200 %. East works 09:00-12:00 and 13:00-18:00, Monday to Friday (Asia/Shanghai); Friday
    4 December 2026 18:30 is after closing, so both clocks start on Monday 7 December at 09:00.
    Response: 1 h → 10:00, 1 h 36 min → 10:36, 2 h → 11:00, 3 h → 12:00 (the morning's last
    minute is its closing time), 4 h → 14:00 (after lunch). Resolution: 4 h → 14:00, 6 h 24 min
    → 16:24, 8 h → 18:00 Monday, 12 h → Tuesday 14:00 (8 + 3 + 1), 16 h → Tuesday 18:00."""
    result = invoke("sla-scenario", "general", "--start", "2026-12-04T18:30", "--region", "east")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "general v1 in east (Asia/Shanghai), priority normal, created Fri 2026-12-04 18:30",
        "clocks (business time): response 2h, resolution 8h",
        "Mon 2026-12-07 10:00  response    reminder     50%",
        "Mon 2026-12-07 10:36  response    reminder     80%",
        "Mon 2026-12-07 11:00  response    breach      100%  → supervisor",
        "Mon 2026-12-07 12:00  response    escalation  150%  → manager",
        "Mon 2026-12-07 14:00  response    escalation  200%  → director",
        "Mon 2026-12-07 14:00  resolution  reminder     50%",
        "Mon 2026-12-07 16:24  resolution  reminder     80%",
        "Mon 2026-12-07 18:00  resolution  breach      100%  → supervisor",
        "Tue 2026-12-08 14:00  resolution  escalation  150%  → manager",
        "Tue 2026-12-08 18:00  resolution  escalation  200%  → director",
    ]


TEMPLATE = {
    "key": "cli_scenario_kiosk",
    "name": "Kiosk repair (CLI scenario test)",
    "start": "fix",
    "sla": {"urgent": {"response": "PT30M", "resolution": "PT3H"}},
    "sla_policy": {"reminders": [0.5], "escalations": [1.5]},
    "nodes": [
        {"id": "fix", "type": "task", "assignee": {"role": "engineer"}, "next": "done"},
        {"id": "done", "type": "end"},
    ],
}
# Berlin, Monday to Friday 08:00-16:00, and Christmas Eve closed by the calendar itself.
CALENDAR = {
    "timezone": "Europe/Berlin",
    "hours": {d: [{"start": "08:00", "end": "16:00"}] for d in ("mon", "tue", "wed", "thu", "fri")},
    "closed_dates": ["2027-12-24"],
}


def test_a_designers_template_file_with_its_own_policy_and_calendar_as_json(tmp_path: Path):
    """Thursday 23 December 2027 15:45 in Berlin, urgent: 15 min are left that day; Friday the
    24th is closed; the weekend too; Monday the 27th opens at 08:00. Response 30 min: 50 % (15 min)
    → Thu 16:00 (closing), 100 % → Mon 08:15, 150 % (45 min) → Mon 08:30. Resolution 3 h: 50 %
    (1 h 30 min) → Mon 09:15, 100 % → Mon 10:45, 150 % (4 h 30 min) → Mon 12:15."""
    template, calendar = tmp_path / "kiosk.yaml", tmp_path / "berlin.yaml"
    template.write_text(yaml.safe_dump(TEMPLATE))
    calendar.write_text(yaml.safe_dump(CALENDAR))
    args = ["sla-scenario", str(template), "--start", "2027-12-23T15:45", "--calendar", str(calendar)]
    result = invoke(*args, "--priority", "urgent", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["template"], out["timezone"], out["priority"]) == ("cli_scenario_kiosk", "Europe/Berlin", "urgent")
    assert out["start"] == "2027-12-23T15:45:00+01:00" and out["complete"]
    assert out["clocks"] == {"response": "30min", "resolution": "3h"}
    fired = [(m["clock"], m["milestone"], m["share"], m["escalated_to"], m["fires_at"][:16]) for m in out["milestones"]]
    assert fired == [
        ("response", "reminder", 0.5, None, "2027-12-23T16:00"),
        ("response", "breach", 1.0, "supervisor", "2027-12-27T08:15"),
        ("response", "escalation", 1.5, "manager", "2027-12-27T08:30"),
        ("resolution", "reminder", 0.5, None, "2027-12-27T09:15"),
        ("resolution", "breach", 1.0, "supervisor", "2027-12-27T10:45"),
        ("resolution", "escalation", 1.5, "manager", "2027-12-27T12:15"),
    ]


def test_a_template_with_problems_is_refused_with_each_problem(tmp_path: Path):
    bad = {**TEMPLATE, "start": "nowhere", "sla_policy": {"reminders": [0.8, 0.5]}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = invoke("sla-scenario", str(path), "--start", "2026-12-04T18:30")
    assert result.exit_code == 1
    assert "not a valid template" in result.stderr and "reminders must be increasing" in result.stderr
    assert "sla-scenario" not in result.stdout


def test_unknown_region_template_and_start_are_usage_errors():
    result = invoke("sla-scenario", "general", "--start", "2026-12-04T18:30", "--region", "mars")
    assert result.exit_code == 2 and "no region 'mars'" in result.stderr and "east" in result.stderr
    result = invoke("sla-scenario", "no_such_preset", "--start", "2026-12-04T18:30")
    assert result.exit_code == 2 and "presets: " in result.output and "general" in result.output
    result = invoke("sla-scenario", "general", "--start", "next friday")
    assert result.exit_code == 2 and "--start" in result.output
