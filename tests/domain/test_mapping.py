"""Mapping rules, pure: JSON paths, conditions (CEL over ``event``, cost-checked, no iteration),
rule choice, de-duplication keys, form values, and every save-time problem with its location."""

import json
import time
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from domain import mapping
from models.integrations import MappingSpec, Rule
from models.template import FieldType, FormField
from tests.support import preset

EVENT = json.loads(
    json.dumps(
        {
            "event_id": "e-1",
            "type": "device.alarm",
            "occurred_at": "2026-12-10T08:00:00+00:00",
            "data": {
                "serial": "CMP-20001",
                "code": "T42",
                "level": 3,
                "temp": 81.5,
                "tags": ["hot", "line-2"],
                "site": {"lat": 31.2, "lon": 121.4, "address": "No. 1 Road"},
                "lines": [{"sku": "A"}, {"sku": "B"}],
                "odd key": "x",
            },
        }
    ),
    parse_float=Decimal,
)
TEMPLATES = {k: preset(k).spec for k in ("installation", "ecommerce_return", "equipment_repair", "general")}
REGIONS = {"east", "south", "north"}


def rule(**over) -> Rule:
    base = {
        "name": "alarm",
        "event_type": "device.alarm",
        "template": "equipment_repair",
        "title": "Alarm {$.data.code} on {$.data.serial}",
        "asset": {"serial": "$.data.serial"},
        "fields": {"device_id": "$.data.serial", "fault": "overheating"},
        "dedup": {"key": ["$.data.serial", "$.data.code"], "window": "PT1H"},
    }
    return Rule.model_validate(base | over)


def problems(*rules: Rule, channel: str = "erp") -> list[tuple[tuple, str]]:
    spec = MappingSpec(rules=list(rules))
    return [(p.loc, p.type) for p in mapping.spec_problems(spec, TEMPLATES | {"nope": None}, REGIONS, channel)]


# --- paths ---


def test_paths_pick_values_and_name_where_they_point():
    assert mapping.pick("$.data.serial", EVENT) == "CMP-20001"
    assert mapping.pick("$.data.lines[1].sku", EVENT) == "B"
    assert mapping.pick("$.data.lines[*].sku", EVENT) == ["A", "B"]  # several matches: a list
    assert mapping.pick('$.data["odd key"]', EVENT) == "x"
    assert mapping.pick("$.data.missing", EVENT) is None
    assert mapping.value_of("east", EVENT) == "east" and mapping.value_of(7, EVENT) == 7  # constants
    assert mapping.path_loc("$.data.lines[1].sku") == ("data", "lines", 1, "sku")
    assert mapping.path_loc("$..sku") == ("$..sku",)


@pytest.mark.parametrize("text", ["data.serial", "$.data.", "$[", "$.a b", "$" + ".x" * 120, "serial"])
def test_a_path_must_parse_and_start_at_the_root(text):
    assert mapping.path_problem(text) is not None


def test_titles_are_small_templates():
    assert mapping.render("Alarm {$.data.code} on {$.data.serial}", EVENT) == "Alarm T42 on CMP-20001"
    assert mapping.render("$.data.code", EVENT) == "T42"
    assert mapping.render("{$.data.missing}!", EVENT) == "!"
    assert mapping.render("level {$.data.level}", EVENT) == "level 3"
    assert mapping.template_paths("a {$.x} b {$.y}") == ["$.x", "$.y"]


# --- conditions ---


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        ("event.data.level == 3", True),  # JSON integers are CEL ints…
        ("event.data.temp > 80.0", True),  # …fractions doubles
        ("event.data.temp > 80", True),
        ('event.type == "device.alarm" && "hot" in event.data.tags', True),
        ("has(event.data.vip)", False),
        ('event.data.serial.startsWith("CMP-")', True),
        ('event.data.code.matches("^T[0-9]+$")', True),
    ],
)
def test_conditions_read_the_event(text, holds):
    assert mapping.condition_problem(text) is None
    assert mapping.condition_holds(text, EVENT) is holds


def test_a_condition_that_cannot_be_evaluated_is_an_error_not_a_match():
    with pytest.raises(mapping.MappingError):
        mapping.condition_holds("event.data.vip == true", EVENT)  # missing key without has()
    with pytest.raises(mapping.MappingError):
        mapping.condition_holds("event.data.serial", EVENT)  # not a boolean


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("event.data.level >", "parse"),
        ("amount > 3", "unknown name"),
        ("event.data.lines.exists(l, l.sku == 'A')", "iterates"),
        ("event.data.lines.map(l, l.sku).size() > 1", "iterates"),
        ("event.data.x == 1 && " * 120 + "true", "characters"),
        ("duration(event.data.code) > duration('1h')", "literal"),
    ],
)
def test_conditions_are_refused_when_they_cannot_be_used_or_may_cost_too_much(text, why):
    started = time.monotonic()
    problem = mapping.condition_problem(text)
    assert time.monotonic() - started < 0.5
    assert problem is not None and why in problem


def test_the_first_rule_of_the_type_whose_condition_holds_wins():
    spec = MappingSpec(
        rules=[
            rule(name="other_type", event_type="device.ok"),
            rule(name="broken", condition="event.data.vip == true"),  # cannot be evaluated: passed over
            rule(name="cold", condition="event.data.temp < 10.0"),
            rule(name="hot", condition="event.data.temp >= 80.0"),
            rule(name="any"),
        ]
    )
    match, skipped = mapping.first_match(spec, EVENT)
    assert match is not None and (match.index, match.rule.name) == (3, "hot")
    assert len(skipped) == 1 and skipped[0].startswith("broken:")
    assert mapping.first_match(spec, {**EVENT, "type": "device.unknown"})[0] is None


# --- de-duplication ---


def test_dedup_keys_are_the_rule_and_the_values():
    r = rule()
    values = mapping.dedup_values(r, EVENT)
    assert values == ["CMP-20001", "T42"]
    key = mapping.dedup_key(r.name, values)
    assert len(key) == 64 and key == mapping.dedup_key("alarm", ["CMP-20001", "T42"])
    assert key != mapping.dedup_key("other", values)
    assert key != mapping.dedup_key("alarm", ["CMP-20001", "T43"])
    assert mapping.dedup_key("a", [{"x": 1, "y": 2}]) == mapping.dedup_key("a", [{"y": 2, "x": 1}])
    assert mapping.shown_values(["x" * 500, 3, None])[0] == "x" * 200


def test_a_rule_without_dedup_raises_one_ticket_per_event():
    r = Rule.model_validate({"name": "a", "event_type": "t", "template": "general", "title": "t", "region": "east"})
    assert r.dedup.key == ["$.event_id"]


# --- form values ---


def test_form_values_take_the_form_the_template_wants():
    money = FormField(name="refund", type=FieldType.MONEY)
    site = FormField(name="site", type=FieldType.LOCATION)
    count = FormField(name="n", type=FieldType.NUMBER)
    text = FormField(name="t", type=FieldType.TEXT)
    doc = {"data": {"total": Decimal("199.90"), "lat": Decimal("31.2"), "lon": Decimal("121.4"), "n": Decimal("2.5")}}
    assert mapping.form_value(money, {"amount": "$.data.total", "currency": "CNY"}, doc) == {
        "amount": "199.90",
        "currency": "CNY",
    }
    assert mapping.form_value(site, {"lat": "$.data.lat", "lon": "$.data.lon", "address": "$.data.none"}, doc) == {
        "lat": 31.2,
        "lon": 121.4,
    }
    assert mapping.form_value(count, "$.data.n", doc) == "2.5"
    assert mapping.form_value(text, "$.data.n", doc) == "2.5"
    assert mapping.form_value(text, "$.data.none", doc) is None


# --- save-time problems ---


def test_the_presets_are_sound():
    folder = Path(__file__).resolve().parents[2] / "templates" / "mappings"
    for path in sorted(folder.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        channel = doc.pop("source")["channel"]
        spec = MappingSpec.model_validate(doc)
        assert mapping.spec_problems(spec, TEMPLATES, REGIONS, channel) == [], path.name


def test_every_problem_is_named_where_it_is():
    found = problems(
        rule(template="nope"),
        rule(name="alarm", condition="event.data.x >"),  # a second "alarm"; a condition that does not parse
        rule(name="paths", dedup={"key": ["$.data."], "window": "PT1H"}, title="{$.data[}", external_ref="$["),
        rule(name="form", fields={"device_id": "$.data.serial", "fault": "melted", "colour": "red", "diagnosis": "x"}),
        rule(name="unmapped", fields={"device_id": "$.data.serial"}),
        rule(name="where", asset=None, region="atlantis"),
        rule(name="nowhere", asset=None),
        rule(name="parts", template="installation", region="east", fields={"address": {"lat": "$.a"}}),
        rule(name="ordered", template="general", region="east", fields={}, asset=None, order={"external_ref": "$.o"}),
    )
    assert found == [
        (("rules", 0, "template"), "unknown_template"),
        (("rules", 1, "name"), "duplicate"),
        (("rules", 1, "condition"), "condition_invalid"),
        (("rules", 2, "dedup", "key", 0), "path_invalid"),
        (("rules", 2, "external_ref"), "path_invalid"),
        (("rules", 2, "title"), "path_invalid"),
        (("rules", 3, "fields", "fault"), "invalid_value"),  # not one of the enum's options
        (("rules", 3, "fields", "colour"), "unknown_field"),
        (("rules", 3, "fields", "diagnosis"), "not_editable"),  # the engineer's, not a channel's
        (("rules", 4, "fields"), "required_field_unmapped"),  # fault
        (("rules", 5, "region"), "unknown_region"),
        (("rules", 6, "region"), "missing"),
        (("rules", 7, "fields", "address"), "parts"),  # a location needs lat and lon
        (("rules", 7, "fields"), "required_field_unmapped"),
        (("rules", 7, "fields"), "required_field_unmapped"),
        (("rules", 8, "order"), "missing"),  # an order needs a customer
    ]


def test_the_title_path_and_composite_parts_are_checked_too():
    refund = {"amount": "$.a", "currency": "$["}
    fields = {"order_no": "$.o", "return_reason": "damaged", "refund_amount": refund}
    found = problems(
        rule(title="Alarm {$.data[}"),
        rule(name="m", template="ecommerce_return", region="east", asset=None, fields=fields),
    )
    assert found == [
        (("rules", 0, "title"), "path_invalid"),
        (("rules", 1, "fields", "refund_amount", "currency"), "path_invalid"),
    ]


def test_a_template_closed_to_the_sources_channel_is_refused():
    spec = TEMPLATES["general"].model_copy(update={"channels": ["agent"]})
    r = rule(name="g", template="general", region="east", fields={}, asset=None)
    found = mapping.spec_problems(MappingSpec(rules=[r]), {"general": spec}, REGIONS, "erp")
    assert [(p.loc, p.type) for p in found] == [(("rules", 0, "template"), "channel_not_allowed")]
