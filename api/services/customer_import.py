"""The customers CSV import (``POST /customers/import``, docs/customers.md): every row is checked
first — its values, repeats inside the file, identities and referral codes already in the
database, the importer's regions — and any problem is a 422 listing each bad row and column with
nothing written; otherwise every row is written in one transaction with bulk inserts (no query
per row). Leads only (``customers.LEADS``)."""

import csv
import io
import secrets
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

import store.customers
import store.regions
from api.errors import Conflict, PayloadTooLarge, ProblemList
from api.services import audit
from api.services.customers import (
    LEADS,
    free_referral_codes,
    level_problem,
    member_levels,
    new_customer_id,
    require,
    visible,
)
from domain.access import can_access_region
from models.customers_http import IMPORT_COLUMNS, REQUIRED_COLUMNS, ImportedCustomer, ImportResult, ImportRow
from models.ticket import ActorRef

# The most data rows one import takes (the API's body limit, 1 MB by default, comes first).
MAX_IMPORT_ROWS = 10_000
# The most problems a refused import lists (then one line saying how many more there were).
MAX_REPORTED = 500


def _problem(row: int, column: str | None, reason: str, type_: str = "value_error") -> dict[str, Any]:
    """One problem in FastAPI's 422 shape, with the CSV row (the header is row 1) and column."""
    loc: list[str | int] = ["body", row] if column is None else ["body", row, column]
    return {"loc": loc, "msg": reason, "type": type_, "row": row, "column": column}


def _read_csv(data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header (lower-cased column names) and the data rows with their row numbers."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProblemList([_problem(1, None, f"the CSV is not UTF-8 text ({exc.reason})", "csv_encoding")]) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    number = 0
    try:
        for number, cells in enumerate(reader, start=1):
            if cells:
                rows.append((number, cells))
    except csv.Error as exc:
        raise ProblemList([_problem(number + 1, None, f"not valid CSV: {exc}", "csv_invalid")]) from exc
    if len(rows) > MAX_IMPORT_ROWS + 1:
        raise PayloadTooLarge(f"an import takes at most {MAX_IMPORT_ROWS} rows ({len(rows) - 1} sent): split the file")
    if not rows or rows[0][0] != 1:
        raise ProblemList(
            [_problem(1, None, "the first row must be the header: " + ",".join(IMPORT_COLUMNS), "csv_header")]
        )
    header = [c.strip().lower() for c in rows[0][1]]
    counts = Counter(header)
    problems = [
        _problem(1, c[:100] or None, f"unknown column {c[:100]!r} (columns: {', '.join(IMPORT_COLUMNS)})", "csv_header")
        for c in counts
        if c not in IMPORT_COLUMNS
    ]
    problems += [_problem(1, c, "the column appears twice", "csv_header") for c, n in counts.items() if n > 1]
    problems += [_problem(1, c, "required column missing", "csv_header") for c in REQUIRED_COLUMNS if c not in counts]
    if problems:
        raise ProblemList(problems[:MAX_REPORTED])
    if len(rows) == 1:
        raise ProblemList([_problem(2, None, "no customers below the header", "csv_empty")])
    return header, rows[1:]


async def import_csv(session: AsyncSession, actor: ActorRef, data: bytes) -> ImportResult:
    """Validate every row, then write all of them in one transaction — or none, with a 422 listing
    every problem by row and column. No query per row: look-ups go in batches."""
    require(actor, LEADS, "import customers")
    header, lines = _read_csv(data)
    problems: list[dict[str, Any]] = []
    rows: list[tuple[int, ImportRow]] = []
    for number, cells in lines:
        if len(cells) != len(header):
            problems.append(_problem(number, None, f"has {len(cells)} cells, the header {len(header)}", "csv_cells"))
            continue
        try:
            rows.append((number, ImportRow.from_cells(dict(zip(header, cells, strict=True)))))
        except ValidationError as exc:
            problems += [
                _problem(number, str(e["loc"][0]) if e["loc"] else None, e["msg"], e["type"]) for e in exc.errors()
            ]
    problems += _repeats_in_file(rows)
    problems += await _against_database(session, actor, rows)
    if problems:
        problems.sort(key=lambda p: (p["row"], p["column"] or ""))
        shown = problems[:MAX_REPORTED]
        if len(problems) > MAX_REPORTED:
            shown.append(
                _problem(
                    problems[MAX_REPORTED]["row"], None, f"… and {len(problems) - MAX_REPORTED} more problems", "more"
                )
            )
        raise ProblemList(shown)
    return await _write_import(session, actor, rows)


def _repeats_in_file(rows: list[tuple[int, ImportRow]]) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    first_seen: dict[tuple[str, str], int] = {}
    for number, row in rows:
        keys = [(kind, value) for kind, value in row.identities()]
        keys += [("external_id", row.external_id)] if row.external_id is not None else []
        for key in keys:
            if key in first_seen:
                problems.append(
                    _problem(number, key[0], f"repeats row {first_seen[key]}'s {key[0]} {key[1]}", "duplicate")
                )
            else:
                first_seen[key] = number
    return problems


async def _against_database(
    session: AsyncSession, actor: ActorRef, rows: list[tuple[int, ImportRow]]
) -> list[dict[str, Any]]:
    """Regions, member levels, referral codes and identities, each looked up once for the file."""
    regions = {code for code, _ in await store.regions.names(session)}
    usable = sorted({r.region for _, r in rows if r.region in regions and can_access_region(actor, r.region)})
    levels = {region: await member_levels(session, region) for region in usable}
    codes = sorted({r.referred_by_code for _, r in rows if r.referred_by_code is not None})
    holders = await store.customers.referral_holders(session, codes)
    owners = await store.customers.identity_owners(session, [p for _, r in rows for p in r.identities()])
    owner_rows = await store.customers.by_ids(session, sorted(set(owners.values())))
    problems = []
    for number, r in rows:
        if r.region not in regions:
            problems.append(_problem(number, "region", f"unknown region {r.region!r}"))
        elif not can_access_region(actor, r.region):
            problems.append(_problem(number, "region", f"region {r.region!r} is outside your regions", "forbidden"))
        elif problem := level_problem(r.member_level, levels[r.region], r.region):
            problems.append(_problem(number, "member_level", problem))
        holder = holders.get(r.referred_by_code or "")
        if r.referred_by_code is not None and (holder is None or not visible(actor, holder)):
            problems.append(
                _problem(number, "referred_by_code", f"no customer with referral code {r.referred_by_code!r}")
            )
        for kind, value in r.identities():
            if (owner_id := owners.get((kind, value))) is not None:
                owner = owner_rows.get(owner_id)
                whose = f" to customer {owner_id}" if owner is not None and visible(actor, owner) else ""
                problems.append(_problem(number, kind, f"{kind} {value} is already registered{whose}", "duplicate"))
    return problems


async def _write_import(session: AsyncSession, actor: ActorRef, rows: list[tuple[int, ImportRow]]) -> ImportResult:
    now = datetime.now(UTC)
    codes = await free_referral_codes(session, len(rows))
    codes_in_use = sorted({r.referred_by_code for _, r in rows if r.referred_by_code is not None})
    holders = await store.customers.referral_holders(session, codes_in_use)
    customers, identities, created = [], [], []
    for (number, r), code in zip(rows, codes, strict=True):
        cid = new_customer_id()
        customers.append(
            {
                "id": cid,
                "kind": r.kind,
                "name": r.name,
                "region": r.region,
                "member_level": r.member_level,
                "referral_code": code,
                "referred_by": holders[r.referred_by_code].id if r.referred_by_code else None,
                "consent": r.consent(),
                "billing_currency": r.billing_currency,
                "language": r.language,
                "notes": "",
                "merged_into": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        identities += [
            {"customer_id": cid, "kind": kind, "value": value, "verified": False, "created_at": now}
            for kind, value in r.identities()
        ]
        created.append(ImportedCustomer(row=number, id=cid, referral_code=code, external_id=r.external_id))
    import_id = "imp_" + secrets.token_hex(8)
    try:
        await store.customers.insert_many(session, customers, identities)
        counts = Counter(r.region for _, r in rows)
        audit.record(
            session,
            actor,
            "customer.import",
            "customer_import",
            import_id,
            None,
            {"imported": len(customers), "identities": len(identities), "regions": counts},
        )
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(
            "an identity or referral code was registered while importing: nothing was imported; retry"
        ) from exc
    return ImportResult(import_id=import_id, imported=len(customers), identities=len(identities), customers=created)
