"""Customer messages, the pure rules: which events are told, on which channel, when (quiet
hours), and the sandboxed templates — refused at save with their line, never rendered unsafe."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from api.services.message_templates import DEFAULTS, read_defaults
from domain import message_templates as rules
from models.common import TicketStatus
from models.customer_messages import (
    CustomerChannel,
    CustomerMessageSettings,
    MessageKind,
    PersonView,
    QuietHours,
    RenderContext,
    TicketView,
)
from models.ticket import TicketEvent

SH = ZoneInfo("Asia/Shanghai")
S = TicketStatus


def event(action: str, before: S | None, after: S, **data) -> TicketEvent:
    return TicketEvent(
        ticket_id="T1", seq=3, action=action, actor_id="eng-li", from_status=before, to_status=after,
        at=datetime(2026, 12, 11, tzinfo=UTC), data=data,
    )  # fmt: skip


# --- which events ---


@pytest.mark.parametrize(
    ("ev", "told", "kind"),
    [
        (event("claim", S.NEW, S.ASSIGNED, assignee="eng-li"), (), MessageKind.ACCEPTED),
        (event("task_opened", None, S.ASSIGNED, assignee="eng-li"), (), MessageKind.ACCEPTED),
        (event("assign", S.IN_PROGRESS, S.ASSIGNED), (), None),  # a second task later: not "accepted" again
        (event("start", S.ASSIGNED, S.IN_PROGRESS), (), MessageKind.ON_THE_WAY),
        (event("start", S.ASSIGNED, S.IN_PROGRESS), ("on_the_way",), None),  # the repair after the diagnosis
        (event("event:on_the_way", S.IN_PROGRESS, S.IN_PROGRESS), ("on_the_way",), MessageKind.ON_THE_WAY),  # new ETA
        (event("request_info", S.IN_PROGRESS, S.IN_PROGRESS, question="?"), (), MessageKind.INFO_NEEDED),
        (event("resolve", S.IN_PROGRESS, S.RESOLVED), (), MessageKind.RESOLVED),
        (event("resolved", S.RESOLVED, S.RESOLVED), (), None),  # the end reached after the resolution
        (event("close", S.RESOLVED, S.CLOSED), (), MessageKind.CLOSED),
        (event("cancel", S.ASSIGNED, S.CANCELLED), (), None),
        (event("comment", S.ASSIGNED, S.ASSIGNED), (), None),
    ],
)
def test_which_events_the_customer_hears_about(ev, told, kind):
    assert rules.kind_of(ev, told) == kind


# --- which channel ---

ALL_ON = frozenset(CustomerChannel)
ADDRESSES = {
    CustomerChannel.SMS: "+8613800138000",
    CustomerChannel.EMAIL: "lin@example.com",
    CustomerChannel.WECHAT: "o-abc",
    CustomerChannel.WEBHOOK: "app-7",
}


def test_the_ticket_s_own_channel_comes_first_then_the_preference():
    consent = {"sms": True, "email": True, "wechat": True, "app": True}
    assert rules.choose_channels(consent, ADDRESSES, "qr", ALL_ON).chosen == ((CustomerChannel.SMS, "+8613800138000"),)
    assert rules.choose_channels(consent, ADDRESSES, "app", ALL_ON).chosen[0][0] == CustomerChannel.WEBHOOK
    assert rules.choose_channels(consent, ADDRESSES, "agent", ALL_ON).chosen[0][0] == CustomerChannel.WECHAT
    every = rules.choose_channels(consent, ADDRESSES, "qr", ALL_ON, fanout="all").chosen
    assert [c for c, _ in every] == [
        CustomerChannel.SMS,
        CustomerChannel.WECHAT,
        CustomerChannel.EMAIL,
        CustomerChannel.WEBHOOK,
    ]


def test_no_consent_no_address_or_channel_off_is_never_chosen_and_says_why():
    consent = {"sms": False, "email": True, "wechat": True, "app": "yes"}  # only True counts
    addresses = {CustomerChannel.EMAIL: "lin@example.com"}
    choice = rules.choose_channels(consent, addresses, "bot", frozenset({CustomerChannel.WECHAT, CustomerChannel.SMS}))
    assert choice.chosen == ()
    assert choice.why_not == "wechat: no address; sms: no consent; email: not configured; webhook: no consent"
    assert rules.choose_channels({}, ADDRESSES, "qr", ALL_ON).chosen == ()


# --- when: quiet hours ---


def at(hour: int, minute: int = 0, day: int = 11) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=SH).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (at(22, 30), at(8, 0, day=12)),  # evening: held until the next morning
        (at(2, 0), at(8, 0)),  # after midnight: until this morning
        (at(7, 59), at(8, 0)),
        (at(8, 0), None),  # the end is not quiet
        (at(20, 59), None),
        (at(21, 0), at(8, 0, day=12)),
    ],
)
def test_quiet_hours_across_midnight_in_the_region_s_time(now, until):
    assert rules.quiet_until(now, SH, QuietHours.parse("21:00-08:00")) == until


def test_quiet_hours_within_a_day_none_and_the_settings():
    lunch = QuietHours.parse("12:00-13:30")
    assert rules.quiet_until(at(12, 15), SH, lunch) == at(13, 30)
    assert rules.quiet_until(at(14, 0), SH, lunch) is None
    assert rules.quiet_until(at(23, 0), SH, None) is None
    assert QuietHours.parse("08:00-08:00") is None
    with pytest.raises(ValueError, match="HH:MM"):
        QuietHours.parse("9pm-8am")
    with pytest.raises(ValueError, match="not a time"):
        QuietHours.parse("25:00-08:00")
    s = CustomerMessageSettings(customer_quiet_hours={"*": "21:00-08:00", "south": "22:00-07:00", "north": ""})
    assert s.quiet_hours("east") == QuietHours(start=time(21), end=time(8))
    assert s.quiet_hours("south") == QuietHours(start=time(22), end=time(7))
    assert s.quiet_hours("north") is None
    with pytest.raises(ValueError):
        CustomerMessageSettings(customer_quiet_hours={"*": "late"})
    with pytest.raises(ValueError, match="CUSTOMER_SMS_SECRET"):
        CustomerMessageSettings(customer_sms_url="http://sms.test/send", customer_sms_secret="short")


# --- language, template, ETA ---


def test_language_falls_back_to_its_primary_subtag_then_chinese():
    assert rules.languages("en-GB") == ["en-GB", "en", "zh"]
    assert rules.languages("en") == ["en", "zh"]
    assert rules.languages(None) == ["zh"]
    have = [("*", "accepted", "en", "*"), ("general", "accepted", "zh", "*"), ("general", "accepted", "en", "sms")]
    pick = rules.pick_template
    assert pick(have, "general", "accepted", ["en-GB", "en", "zh"], "sms") == ("general", "accepted", "en", "sms")
    assert pick(have, "general", "accepted", ["en", "zh"], "email") == ("*", "accepted", "en", "*")
    assert pick(have, "repair", "accepted", ["fr", "zh"], "email") is None
    assert pick(have, "general", "closed", ["en"], "sms") is None


def test_eta_is_shown_in_the_region_s_local_time():
    assert rules.eta_text("2026-12-11T07:30:00+00:00", SH) == "2026-12-11 15:30"
    assert rules.eta_text("2026-12-11T07:30:00", SH) == "2026-12-11 15:30"  # no zone: UTC
    assert rules.eta_text("about an hour", SH) == "about an hour"
    assert rules.eta_text("x" * 41, SH) == ""
    assert rules.eta_text(None, SH) == ""


# --- the sandbox ---


def problems(body: str, subject: str = "") -> list[tuple[str, int | None, str]]:
    return [(p.field, p.line, p.type) for p in rules.validate(subject, body)]


@pytest.mark.parametrize(
    ("body", "line", "type_"),
    [
        ("Hello\n{{ ticket.__class__ }}", 2, "template_unknown_attribute"),
        ("a\nb\n{{ cycler.__init__.__globals__ }}", 3, "template_forbidden"),
        ("x\n\n{{ foo }}", 3, "template_unknown_variable"),
        ("{{ engineer.phone }}", 1, "template_unknown_attribute"),  # no staff phone numbers in reach
        ("{{ ticket.description }}", 1, "template_unknown_attribute"),
        ("{{ ticket['__class__'] }}", 1, "template_unknown_attribute"),
        ("{{ ticket.title.upper() }}", 1, "template_forbidden"),
        ("{{ ticket|attr('__class__') }}", 1, "template_forbidden"),
        ("{% for c in ticket.title %}{% for d in ticket.title %}x{% endfor %}{% endfor %}", 1, "template_forbidden"),
        ("{{ ticket.title * 1000000000 }}", 1, "template_forbidden"),
        ("{{ ticket.title|center(1000000000) }}", 1, "template_forbidden"),
        ("{% set x = 1 %}", 1, "template_forbidden"),
        ("{% include 'other' %}", 1, "template_forbidden"),
        ("{{ range(10) }}", 1, "template_forbidden"),  # a call (and range is unknown: no globals)
        ("one\n{% if %}", 2, "template_syntax"),
        ("{{ question|truncate('x') }}", 1, "template_render"),  # only a render shows it
    ],
)
def test_a_bad_template_is_refused_naming_its_line(body, line, type_):
    found = problems(body)
    assert found and found[0] == ("body", line, type_), found


def test_the_subject_is_checked_too_and_a_good_template_passes():
    assert problems("ok", subject="{{ ticket.id }}\n{{ nope }}") == [("subject", 2, "template_unknown_variable")]
    assert (
        problems("{% if eta %}at {{ eta|default('?') }}{% endif %} {{ kind|upper }} {{ question|truncate(20) }}") == []
    )
    assert problems("NUL \x00") == [("body", None, "nul_character")]


def test_the_sandbox_refuses_at_render_what_validation_would_have_refused():
    context = rules.sample_contexts()[0]
    with pytest.raises(rules.RenderError, match="unsafe"):
        rules.render("", "{{ ticket.__class__.__mro__ }}", context)
    with pytest.raises(rules.RenderError, match="undefined"):
        rules.render("", "{{ cycler }}", context)  # no globals at all


def test_render_makes_one_line_subjects_and_needs_no_optional_value():
    context = RenderContext(
        kind="accepted", ticket=TicketView(id="T9", title="Pump", status="assigned", type="general"),
        customer=PersonView(name="Lin"),
    )  # fmt: skip
    subject, body = rules.render(
        "[{{ ticket.id }}]\n  {{ ticket.title }}", "Hi {{ customer.name }}{{ eta }}\n", context
    )
    assert (subject, body) == ("[T9] Pump", "Hi Lin")


def test_every_shipped_default_validates():
    loaded = [d for path in sorted(DEFAULTS.glob("*.yaml")) for d in read_defaults(path)]
    types = {d[0] for d in loaded}
    assert {"*", "general", "equipment_repair", "installation", "complaint", "ecommerce_return"} <= types
    for ticket_type, kind, language, body in loaded:
        assert rules.validate(body.subject, body.body) == [], (ticket_type, kind, language)
    for ticket_type in types:
        have = {(k, lang) for t, k, lang, _ in loaded if t == ticket_type}
        assert have == {(k, lang) for k in MessageKind for lang in ("zh", "en")}, ticket_type


def test_validation_of_a_long_template_is_quick():
    body = "{{ ticket.title }} " * 200
    started = datetime.now(UTC)
    assert problems(body[:5000]) == []
    assert datetime.now(UTC) - started < timedelta(seconds=2)
