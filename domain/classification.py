"""Pick a ticket type and priority for a ticket created without one (customer channels, ERP events)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.expressions import TICKET_VARS, ExpressionError, condition
from models.template import FieldType, TemplateSpec
from models.ticket import Priority


@dataclass(frozen=True)
class Classification:
    spec: TemplateSpec
    priority: Priority
    reason: str


def classify(
    templates: Iterable[TemplateSpec], channel: str, title: str, description: str, fields: Mapping[str, Any]
) -> Classification | None:
    """The best-ranked matching rule of all templates (ties: template key), or None."""
    text = f"{title}\n{description}".lower()
    matches: list[tuple[int, str, Classification]] = []
    for spec in templates:
        types = {**TICKET_VARS, "ticket_id": FieldType.TEXT, **{f.name: f.type for f in spec.fields}}
        values = {**fields, "channel": channel, "title": title, "description": description}
        for rule in spec.classification:
            if rule.channels and channel not in rule.channels:
                continue
            hit = next((k for k in rule.keywords if k.lower() in text), None)
            if rule.keywords and hit is None:
                continue
            if rule.when:
                try:
                    if not condition(rule.when, types, values):
                        continue
                except ExpressionError:
                    continue
            why = [f"channel {channel}" if rule.channels else "", f"keyword {hit!r}" if hit else "", rule.when or ""]
            reason = f"{spec.key}: " + ", ".join(w for w in why if w) if any(why) else f"{spec.key}: catch-all rule"
            matches.append((rule.rank, spec.key, Classification(spec, rule.priority or spec.default_priority, reason)))
    return min(matches, key=lambda m: (m[0], m[1]))[2] if matches else None
