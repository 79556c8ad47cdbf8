"""Statements and price rules over HTTP. Everything is scoped by the caller's regions: a
statement or a region outside them is ``NotFound``, exactly like one that does not exist.

Roles: ``finance`` and ``admin`` see every field and publish price rules; ``manager`` and
``supervisor`` may also list and export statements; everyone else only reads a ticket's
statement (and a region's rules) without the finance-only fields — the revenue split and the
rule behind each line.
"""

import csv
import io
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlmodel.ext.asyncio.session import AsyncSession

import store.regions
import store.statements
from api.errors import Conflict, FieldInvalid, Forbidden, NotFound, ProblemList
from api.services import audit
from domain.access import can_access_region, visible_regions
from domain.pricing import PricingError, compile_rules
from models.pricing import RegionPricing, Statement
from models.settlement import SettlementKind
from models.settlement_http import (
    PriceRulesOut,
    PriceRulesVersion,
    PublicStatement,
    StatementOut,
    StatementPage,
    StatementSummary,
)
from models.settlement_tables import PriceRules, StatementRow
from models.tables import Region
from models.ticket import ActorRef
from store.statements import budget_check, budget_reason, in_currency, plain

FINANCE_ROLES = frozenset({"finance", "admin"})
STATEMENT_LIST_ROLES = frozenset({"finance", "admin", "manager", "supervisor"})
RULES_PUBLISH_ROLES = FINANCE_ROLES
VERSION_MAX = 64  # price_rules.version

StatusFilter = Literal["final", "pre_settlement", "all"]

# The export's header: the columns it reads, the statement's id named as such.
CSV_COLUMNS = ("statement_id", *store.statements.EXPORT_COLUMNS[1:])


def is_finance(actor: ActorRef) -> bool:
    return not FINANCE_ROLES.isdisjoint(actor.roles)


# --- a ticket's statement ---


def redact(statement: Statement) -> PublicStatement:
    """The statement without the finance-only fields (the split, each line's rule)."""
    return PublicStatement.model_validate(statement.model_dump(exclude={"split": True, "lines": {"__all__": {"rule"}}}))


def _summary_fields(row: StatementRow) -> dict[str, Any]:
    cur = row.currency
    difference = row.total - row.pre_settlement_total if row.pre_settlement_total is not None else None
    return {
        "id": row.id or 0,
        "ticket_id": row.ticket_id,
        "ticket_version": row.ticket_version,
        "status": SettlementKind(row.status),
        "region": row.region,
        "ticket_type": row.ticket_type,
        "rules_version": row.rules_version,
        "currency": cur,
        "net": in_currency(row.net, cur),
        "tax": in_currency(row.tax, cur),
        "total": in_currency(row.total, cur),
        "over_budget": row.over_budget,
        "budget": in_currency(row.budget, cur),
        "pre_settlement_total": in_currency(row.pre_settlement_total, cur),
        "difference": in_currency(difference, cur),
        "created_at": row.created_at,
    }


def statement_out(row: StatementRow, actor: ActorRef) -> StatementOut:
    _, limit = budget_check(row.total, row.budget, row.budget_tolerance_percent)
    fields = _summary_fields(row)
    statement = Statement.model_validate(row.statement)
    finance = is_finance(actor)
    return StatementOut(
        **fields,
        budget_tolerance_percent=plain(row.budget_tolerance_percent)
        if row.budget_tolerance_percent is not None
        else None,
        budget_limit=in_currency(limit, row.currency),
        budget_reason=budget_reason(row, limit),
        exceeds_pre_settlement=fields["difference"] is not None and fields["difference"] > 0,
        finance_view=finance,
        statement=statement if finance else redact(statement),
    )


async def ticket_statement(
    session: AsyncSession, actor: ActorRef, ticket_id: str, kind: SettlementKind | None = None
) -> StatementOut:
    """The ticket's latest final statement, else its latest pre-settlement (or the latest of
    ``kind``)."""
    row = await store.statements.of_ticket(session, ticket_id, kind)
    if row is None or not can_access_region(actor, row.region):
        raise NotFound(f"no statement for ticket {ticket_id!r}")
    return statement_out(row, actor)


# --- lists and the reconciliation export ---


@dataclass(frozen=True)
class StatementFilter:
    region: str | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    status: StatusFilter = "final"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _checked(actor: ActorRef, f: StatementFilter) -> dict[str, Any]:
    """The store's selection for the caller and ``f``, once the caller may list statements and
    the filter holds (else ``Forbidden``, ``NotFound``, ``FieldInvalid``)."""
    if STATEMENT_LIST_ROLES.isdisjoint(actor.roles):
        raise Forbidden(f"listing statements needs one of the roles {', '.join(sorted(STATEMENT_LIST_ROLES))}")
    if f.region is not None and not can_access_region(actor, f.region):
        raise NotFound(f"no region {f.region!r}")
    start, end = _utc(f.start), _utc(f.end)
    if start is not None and end is not None and end < start:
        raise FieldInvalid("to", "'to' is before 'from'", location="query")
    return {
        "region": f.region,
        "regions": visible_regions(actor),
        "start": start,
        "end": end,
        "status": None if f.status == "all" else f.status,
    }


async def _matching(
    session: AsyncSession, actor: ActorRef, f: StatementFilter, limit: int | None = None, offset: int = 0
) -> list[StatementRow]:
    """The caller's statements that ``f`` selects, oldest first."""
    return await store.statements.matching(session, **_checked(actor, f), limit=limit, offset=offset)


async def list_statements(
    session: AsyncSession, actor: ActorRef, f: StatementFilter, limit: int = 100, offset: int = 0
) -> StatementPage:
    rows = await _matching(session, actor, f, limit, offset)
    return StatementPage(items=[StatementSummary(**_summary_fields(r)) for r in rows], limit=limit, offset=offset)


def _money(value: Decimal) -> str:
    return format(value, "f")


def export_csv(session: AsyncSession, actor: ActorRef, f: StatementFilter) -> AsyncIterator[bytes]:
    """The reconciliation CSV, streamed: one row per statement, oldest first, then one ``TOTAL``
    row per currency (sorted by code) whose net, tax and total are the exact sums of the rows
    above it (``TOTAL`` with zeros and no currency when nothing matched).

    The caller and the filter are checked here, at once (``Forbidden``, ``NotFound``,
    ``FieldInvalid`` before a byte is sent); the rows are read in batches through a server-side
    cursor (``store.statements.stream_matching``) and each batch goes out as one UTF-8 chunk of
    CRLF-terminated lines, so memory holds one batch and the per-currency sums, whatever the
    number of statements. A failure once the answer has started cuts the body short: it then
    lacks its ``TOTAL`` rows."""
    batches = store.statements.stream_matching(session, **_checked(actor, f))
    return _csv_chunks(batches)


async def _csv_chunks(batches: AsyncIterator[Sequence[Any]]) -> AsyncIterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")

    def drain() -> bytes:
        chunk = out.getvalue().encode()
        out.seek(0)
        out.truncate()
        return chunk

    writer.writerow(CSV_COLUMNS)
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0), Decimal(0)])
    async for batch in batches:  # rows of store.statements.EXPORT_COLUMNS
        for sid, ticket_id, version, status, region, ticket_type, created_at, currency, *amounts in batch:
            net, tax, total = (in_currency(v, currency) for v in amounts)
            assert net is not None and tax is not None and total is not None
            acc = sums[currency]
            acc[0], acc[1], acc[2] = acc[0] + net, acc[1] + tax, acc[2] + total
            created = created_at.isoformat().replace("+00:00", "Z")
            writer.writerow(
                [
                    sid,
                    ticket_id,
                    version,
                    status,
                    region,
                    ticket_type,
                    created,
                    currency,
                    _money(net),
                    _money(tax),
                    _money(total),
                ]
            )
        del batch  # not kept alive while the next one is read
        yield drain()
    if not sums:
        writer.writerow(["TOTAL", "", "", "", "", "", "", "", "0", "0", "0"])
    for currency in sorted(sums):
        net, tax, total = sums[currency]
        writer.writerow(["TOTAL", "", "", "", "", "", "", currency, _money(net), _money(tax), _money(total)])
    yield drain()


def export_filename(f: StatementFilter) -> str:
    parts = ["statements", f.region or "all"]
    if f.start:
        parts.append(_utc(f.start).strftime("%Y%m%dT%H%M%SZ"))  # type: ignore[union-attr]
    if f.end:
        parts.append(_utc(f.end).strftime("%Y%m%dT%H%M%SZ"))  # type: ignore[union-attr]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "-".join(parts)) + ".csv"


# --- price rules ---


_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def pricing_error_loc(path: str) -> list[str | int]:
    """``rules.services[2].tiers[1].over`` → ``["body", "services", 2, "tiers", 1, "over"]``."""
    tokens: list[str | int] = [int(i) if i else name for name, i in _PATH_TOKEN.findall(path)]
    if tokens[:1] == ["rules"]:
        tokens = tokens[1:]
    return ["body", *tokens]


def _rules_out(row: PriceRules, actor: ActorRef) -> PriceRulesOut:
    finance = is_finance(actor)
    rules = dict(row.rules)
    if not finance:
        rules.pop("split", None)
    return PriceRulesOut(
        region=row.region,
        version=row.version,
        active=row.active,
        created_by=row.created_by,
        created_at=row.created_at,
        finance_view=finance,
        rules=rules,
    )


async def _region(session: AsyncSession, actor: ActorRef, region: str, *, lock: bool = False) -> Region:
    if not can_access_region(actor, region):
        raise NotFound(f"no region {region!r}")
    found = await store.regions.get(session, region, lock=lock)  # lock: one publisher per region at a time
    if found is None:
        raise NotFound(f"no region {region!r}")
    return found


async def publish_rules(
    session: AsyncSession, actor: ActorRef, region: str, rules: RegionPricing
) -> tuple[PriceRulesOut, bool]:
    """Validate and publish ``rules`` as the region's active version. ``(rules, new)``: publishing
    the active version again with the same content changes nothing (``new=False``); a version
    that exists with other content, or that was superseded, is a 409."""
    if RULES_PUBLISH_ROLES.isdisjoint(actor.roles):
        raise Forbidden(f"publishing price rules needs one of the roles {', '.join(sorted(RULES_PUBLISH_ROLES))}")
    if not can_access_region(actor, region):
        raise NotFound(f"no region {region!r}")
    if rules.region != region:
        raise FieldInvalid("region", f"the rules are for region {rules.region!r}, not {region!r}")
    if not 0 < len(rules.version) <= VERSION_MAX or not rules.version.strip():
        raise FieldInvalid("version", "a version is 1 to 64 characters")
    try:
        compile_rules(rules)
    except PricingError as exc:
        raise ProblemList([{"loc": pricing_error_loc(exc.path), "msg": exc.message, "type": str(exc.code)}]) from exc
    await _region(session, actor, region, lock=True)
    dump = rules.model_dump(mode="json")
    existing = await store.statements.rules_version(session, region, rules.version)
    if existing is not None:
        if existing.rules != dump:
            raise Conflict(
                f"version {rules.version!r} of region {region!r} is already published with other "
                "content; publish under a new version"
            )
        if not existing.active:
            raise Conflict(
                f"version {rules.version!r} of region {region!r} was superseded; publish it under a "
                "new version to use it again"
            )
        return _rules_out(existing, actor), False
    previous = await store.statements.active_rules(session, region)
    row = PriceRules(
        region=region, version=rules.version, rules=dump, active=True, created_by=actor.id, created_at=datetime.now(UTC)
    )
    await store.statements.activate_rules(session, row)
    audit.record(
        session,
        actor,
        "price_rules.publish",
        "price_rules",
        region,
        {"version": previous.version} if previous else None,
        {"version": row.version},
    )
    await session.commit()
    return _rules_out(row, actor), True


async def get_rules(session: AsyncSession, actor: ActorRef, region: str, version: str | None = None) -> PriceRulesOut:
    await _region(session, actor, region)
    if version is None:
        row = await store.statements.active_rules(session, region)
    else:
        row = await store.statements.rules_version(session, region, version)
    if row is None:
        missing = "active price rules" if version is None else f"version {version!r}"
        raise NotFound(f"region {region!r} has no {missing}")
    return _rules_out(row, actor)


async def list_rule_versions(session: AsyncSession, actor: ActorRef, region: str) -> list[PriceRulesVersion]:
    await _region(session, actor, region)
    rows = await store.statements.rule_versions(session, region)
    return [
        PriceRulesVersion(
            region=r.region, version=r.version, active=r.active, created_by=r.created_by, created_at=r.created_at
        )
        for r in rows
    ]
