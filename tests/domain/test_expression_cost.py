"""What a template author's expression or pattern may cost (issue #9): expressions are checked
for cost when the template is saved, and form patterns run on re2 (linear time)."""

import time

import pytest

from domain import forms
from domain.expressions import TICKET_VARS, check, condition
from models.template import FieldType, FormField

TYPES = {**TICKET_VARS, "ticket_id": FieldType.TEXT, "tags": FieldType.MULTI_ENUM, "amount": FieldType.MONEY}
EVIL = "a" * 24 + "!"  # cel-python's duration() regex backtracks on it: ~1.3 s, 4x per 2 more characters


def refused(text: str) -> str:
    started = time.monotonic()
    error = check(text, TYPES)
    assert time.monotonic() - started < 1.0, "check() itself must stay cheap"  # the backtracking takes >= 1.3 s
    assert error is not None, f"{text[:60]!r} should be refused"
    assert error.kind == "cost"
    return error.message


@pytest.mark.parametrize(
    "text",
    [
        "duration(title) > duration('1h')",
        "title.duration() > duration('1h')",
        "timestamp(description) > timestamp('2026-01-01T00:00:00Z')",
        "duration('1' + title) > duration('1h')",
        f"duration('{EVIL}') > duration('1h')",  # a literal, but not a duration: never parsed by cel-python
        f"timestamp('{'9' * 200}') > timestamp('2026-01-01T00:00:00Z')",
    ],
)
def test_duration_and_timestamp_take_only_a_short_well_formed_literal(text: str) -> None:
    assert "literal" in refused(text)


@pytest.mark.parametrize(
    "text",
    [
        "duration('1h30m') > duration('90m')",
        "duration('-1.5s') < duration('0s')",
        "timestamp('2026-01-01T00:00:00Z') < timestamp('2026-01-02T08:00:00+08:00')",
    ],
)
def test_well_formed_literals_still_work(text: str) -> None:
    assert check(text, TYPES) is None


def test_a_long_expression_is_refused() -> None:
    text = "title == '" + "x" * 1_000 + "'"
    assert "characters" in refused(text)


def test_an_expression_with_too_many_nodes_is_refused() -> None:
    text = "+".join(["1"] * 300) + " > 0"  # under the length limit, but 300 terms
    assert len(text) <= 1_000
    assert "nodes" in refused(text)


def test_comprehensions_nest_at_most_two_deep() -> None:
    two = "tags.all(a, tags.exists(b, a == b))"
    assert check(two, TYPES) is None
    three = "tags.all(a, tags.exists(b, tags.all(c, a == b && b == c)))"
    assert "nested" in refused(three)


def test_deeply_parenthesised_text_is_refused_cheaply() -> None:
    assert refused("(" * 400 + "true" + ")" * 400)


def test_matches_runs_in_linear_time() -> None:
    """matches() is re2 inside cel-python: the classic catastrophic pattern is instant."""
    text = 'title.matches("(a+)+$")'
    assert check(text, TYPES) is None
    started = time.monotonic()
    assert condition(text, TYPES, {"title": "a" * 50_000 + "!"}) is False
    assert time.monotonic() - started < 0.5


def test_existing_kinds_of_problem_are_unchanged() -> None:
    assert check("amount >", TYPES).kind == "syntax"
    assert check("nobody == 1", TYPES).kind == "unknown_name"


# --- form patterns and sizes ------------------------------------------------------------


def field(**kw) -> FormField:
    return FormField(**{"name": "f", "type": FieldType.TEXT, **kw})


def test_a_form_pattern_runs_in_linear_time() -> None:
    f = field(pattern="(a+)+$")
    started = time.monotonic()
    assert forms.check_value(f, "a" * 24 + "!") is not None  # Python's re: seconds, 2x per character
    assert forms.check_value(f, "a" * 24) is None
    assert time.monotonic() - started < 0.5


def test_a_pattern_re2_cannot_compile_is_a_clear_error() -> None:
    for pattern in (r"(a)\1", "(?=a)a", "(unclosed"):
        assert forms.pattern_problem(pattern) is not None
        msg = forms.check_value(field(pattern=pattern), "a")
        assert msg is not None and "pattern" in msg
    assert forms.pattern_problem(r"[A-Z]{2}-\d{4}") is None


@pytest.mark.parametrize(
    ("ftype", "cap"), [(FieldType.TEXT, 2_000), (FieldType.LONG_TEXT, 20_000), (FieldType.FILE, 2_000)]
)
def test_text_values_are_capped(ftype: FieldType, cap: int) -> None:
    f = field(type=ftype)
    assert forms.check_value(f, "x" * cap) is None
    assert "at most" in forms.check_value(f, "x" * (cap + 1))
    assert "at most" in forms.check_value(f, "x" * 3_000_000)
    small = field(type=ftype, max=10)  # the field's own max, when smaller, still wins
    assert forms.check_value(small, "x" * 11) is not None


def test_a_pattern_re2_cannot_run_is_a_problem_at_save_time():
    from domain.template_validation import validate_template
    from tests.support import preset

    spec = preset("general").spec.model_copy(deep=True)
    spec.fields = [FormField(name="code", type=FieldType.TEXT, pattern=r"(a)\1")]  # a backreference
    problems = validate_template(spec, {})
    assert [p.loc for p in problems] == [("fields", 0, "pattern")]
