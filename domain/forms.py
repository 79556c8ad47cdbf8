"""Form values against a template's fields: types, required, options, ranges, patterns, roles.

Money travels as ``{"amount": "123.45", "currency": "CNY"}`` with the amount a string (or an
integer); a float amount is refused, so no binary fraction ever becomes money.
"""

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from models.template import FieldType, FormField, TemplateSpec

PHONE = re.compile(r"^\+?[0-9][0-9 \-]{5,19}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FULL_ACCESS = frozenset({"admin"})


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or isinstance(value, float):
        return None
    try:
        return Decimal(str(value)) if isinstance(value, int | str | Decimal) else None
    except InvalidOperation:
        return None


def normalize(f: FormField, value: Any) -> Any:
    """The stored form of a valid value (call ``check_value`` first)."""
    if f.type == FieldType.NUMBER:
        return str(Decimal(str(value))) if not isinstance(value, float) else str(Decimal(repr(value)))
    if f.type == FieldType.MONEY:
        return {"amount": str(_decimal(value["amount"])), "currency": str(value["currency"]).upper()}
    return value


def _range(f: FormField, number: Decimal, what: str) -> str | None:
    if f.min is not None and number < f.min:
        return f"{what} must be at least {f.min}"
    if f.max is not None and number > f.max:
        return f"{what} must be at most {f.max}"
    return None


def check_value(f: FormField, value: Any) -> str | None:  # noqa: C901, PLR0911, PLR0912 - one branch per type
    """Why ``value`` is not valid for field ``f``, or None."""
    t = f.type
    if t in (FieldType.TEXT, FieldType.LONG_TEXT, FieldType.FILE):
        if not isinstance(value, str):
            return "must be a string"
        if f.pattern and not re.fullmatch(f.pattern, value):
            return f"does not match {f.pattern!r}"
        return _range(f, Decimal(len(value)), "length")
    if t == FieldType.NUMBER:
        number = Decimal(repr(value)) if isinstance(value, float) else _decimal(value)
        if number is None or not number.is_finite():
            return "must be a number"
        return _range(f, number, "value")
    if t == FieldType.MONEY:
        if not isinstance(value, Mapping) or set(value) != {"amount", "currency"}:
            return 'must be {"amount": "123.45", "currency": "CNY"}'
        if isinstance(value["amount"], float):
            return "amount must be sent as a string (e.g. \"1999.90\"), not a JSON number with a fraction"
        amount = _decimal(value["amount"])
        if amount is None or not amount.is_finite():
            return "amount must be a decimal number"
        currency = value["currency"]
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            return "currency must be an ISO 4217 code"
        if f.currency and currency.upper() != f.currency:
            return f"currency must be {f.currency}"
        return _range(f, amount, "amount")
    if t == FieldType.ENUM:
        return None if value in (f.options or []) else f"must be one of {f.options}"
    if t == FieldType.MULTI_ENUM:
        if not isinstance(value, list) or any(v not in (f.options or []) for v in value):
            return f"must be a list of {f.options}"
        return "has duplicates" if len(set(value)) != len(value) else None
    if t == FieldType.BOOLEAN:
        return None if isinstance(value, bool) else "must be true or false"
    if t == FieldType.DATE:
        try:
            dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            return "must be a date like 2026-11-24"
        return None
    if t == FieldType.DATETIME:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return "must be an ISO 8601 date-time"
        return None if parsed.tzinfo else "must include a timezone offset"
    if t == FieldType.PHONE:
        return None if isinstance(value, str) and PHONE.match(value) else "must be a phone number"
    if t == FieldType.EMAIL:
        return None if isinstance(value, str) and EMAIL.match(value) else "must be an email address"
    if t == FieldType.LOCATION:
        if not isinstance(value, Mapping) or not {"lat", "lon"} <= set(value) or set(value) - {"lat", "lon", "address"}:
            return 'must be {"lat": 31.23, "lon": 121.47, "address": "…"}'
        lat, lon = value["lat"], value["lon"]
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (lat, lon)):
            return "lat and lon must be numbers"
        return None if -90 <= lat <= 90 and -180 <= lon <= 180 else "lat/lon out of range"
    return None


def _editable(f: FormField, roles: Iterable[str] | None) -> bool:
    if roles is None or not f.editable_by:
        return True
    return bool(set(roles) & (set(f.editable_by) | FULL_ACCESS))


def validate_values(
    spec: TemplateSpec, values: Mapping[str, Any], roles: Iterable[str] | None = None, intake: bool = False
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Normalised values and problems ``(field, message, type)``; ``intake`` also checks required."""
    roles = list(roles) if roles is not None else None
    out: dict[str, Any] = {}
    problems: list[tuple[str, str, str]] = []
    for name, value in values.items():
        f = spec.field(name)
        if f is None:
            problems.append((name, f"unknown field for {spec.key}", "unknown_field"))
            continue
        if not _editable(f, roles):
            problems.append((name, f"only {', '.join(f.editable_by)} may set {name}", "not_editable"))
            continue
        if value is None:
            continue
        if (msg := check_value(f, value)) is not None:
            problems.append((name, msg, "invalid_value"))
            continue
        out[name] = normalize(f, value)
    if intake:
        for f in spec.fields:
            if f.required and f.default is None and f.name not in out and not any(p[0] == f.name for p in problems):
                problems.append((f.name, "required", "missing"))
    return out, problems


def visible_values(spec: TemplateSpec, values: Mapping[str, Any], roles: Iterable[str]) -> dict[str, Any]:
    """The values a caller with ``roles`` may see (e.g. cost fields only for finance)."""
    roles = set(roles)
    shown = {}
    for name, value in values.items():
        f = spec.field(name)
        if f is None or not f.visible_to or roles & (set(f.visible_to) | FULL_ACCESS):
            shown[name] = value
    return shown
