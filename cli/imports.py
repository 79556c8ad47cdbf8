"""``ticketflow people import`` and ``ticketflow customers import``: CSV files into the API.

Customers have a bulk endpoint (``POST /customers/import``: every row or none, problems by row
and column). People do not: the whole file is checked here first, every row against the API's
own body model (``models.people.PersonFields``), each problem reported with its row, and nothing
is sent if any row is bad; then each person is written with ``PUT /people/{id}`` (``POST
/people`` for a new id), managers before the people they manage. A re-run writes the same
people again (a PUT replaces), so a file the API refused part of can be fixed and sent again.
"""

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import ticketflow_client
import typer
from pydantic import ValidationError

from cli.api import (
    DEFAULT_URL,
    REFUSED,
    ApiKey,
    ApiUrl,
    JsonOut,
    connected,
    echo_json,
    fail,
    problems,
    seg,
)
from models.people import PERSON_ID_PATTERN, PersonFields

people = typer.Typer(help="People (staff) from CSV, through the API.", no_args_is_help=True)
customers = typer.Typer(help="Customers from CSV, through the API.", no_args_is_help=True)

CsvFile = Annotated[Path, typer.Argument(help="A UTF-8 CSV file with a header row.", exists=True, dir_okay=False)]

# Columns of a people CSV: lists are separated by ";", maps are name:value;name:value, and
# working_hours / out_of_office are JSON (as in the API's body).
LISTS = ("roles", "regions", "groups")
MAPS = {"skills": int, "features": float}
NUMBERS = {"home_lat": float, "home_lon": float, "capacity": int, "seniority": int}
JSON_COLUMNS = ("working_hours", "out_of_office")
TEXT = ("name", "team", "manager_id")
COLUMNS = ("id", "active", *TEXT, *LISTS, *MAPS, *NUMBERS, *JSON_COLUMNS)
MAX_ROWS = 10_000
BOOLS = {"true": True, "yes": True, "y": True, "1": True, "false": False, "no": False, "n": False, "0": False}


@dataclass
class Row:
    number: int  # the CSV record number, the header being row 1 (as a spreadsheet numbers it)
    id: str
    body: dict[str, Any]


@dataclass
class Checked:
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _cell(column: str, raw: str) -> Any:
    """One non-empty cell as the API's body takes it (ValueError: why it cannot be read)."""
    if column in LISTS:
        return [v.strip() for v in raw.split(";") if v.strip()]
    if column in MAPS:
        out: dict[str, Any] = {}
        for item in (v.strip() for v in raw.split(";") if v.strip()):
            name, sep, value = item.rpartition(":")
            if not sep or not name.strip():
                raise ValueError(f"expected name:value, got {item!r}")
            try:
                out[name.strip()] = MAPS[column](value.strip())
            except ValueError:
                raise ValueError(f"{name.strip()}: not a number: {value.strip()!r}") from None
        return out
    if column in NUMBERS:
        try:
            return NUMBERS[column](raw)
        except ValueError:
            raise ValueError(f"not a number: {raw!r}") from None
    if column in JSON_COLUMNS:
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from None
    if column == "active":
        if raw.lower() not in BOOLS:
            raise ValueError(f"expected true/false, yes/no, y/n or 1/0, got {raw!r}")
        return BOOLS[raw.lower()]
    return raw


def check_people(text: str) -> Checked:
    """Every row of a people CSV checked; ``problems`` lists each with its row and column."""
    out = Checked()
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    unknown = [h for h in header if h not in COLUMNS]
    repeated = sorted({h for h in header if header.count(h) > 1})
    missing = [c for c in ("id", "name", "roles", "regions") if c not in header]
    if not header or unknown or repeated or missing:
        out.problems.append(
            "row 1 (header): "
            + "; ".join(
                p
                for p in (
                    "no header row" if not header else "",
                    f"unknown column(s) {', '.join(unknown)} (known: {', '.join(COLUMNS)})" if unknown else "",
                    f"repeated column(s) {', '.join(repeated)}" if repeated else "",
                    f"missing column(s) {', '.join(missing)}" if missing else "",
                )
                if p
            )
        )
        return out
    seen: dict[str, int] = {}
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if number - 1 > MAX_ROWS:
            out.problems.append(f"row {number}: more than {MAX_ROWS} rows: split the file")
            break
        if len(cells) != len(header):
            out.problems.append(f"row {number}: {len(cells)} cells for {len(header)} columns")
            continue
        values = dict(zip(header, (c.strip() for c in cells), strict=True))
        body: dict[str, Any] = {}
        bad = False
        for column, raw in values.items():
            if column == "id" or raw == "":
                continue
            try:
                body[column] = _cell(column, raw)
            except ValueError as exc:
                out.problems.append(f"row {number}, column {column}: {exc}")
                bad = True
        person_id = values["id"]
        if not re.fullmatch(PERSON_ID_PATTERN, person_id):
            out.problems.append(f"row {number}, column id: {person_id!r} is not a person id ({PERSON_ID_PATTERN})")
            bad = True
        elif person_id in seen:
            out.problems.append(f"row {number}, column id: {person_id} repeats row {seen[person_id]}")
            bad = True
        else:
            seen[person_id] = number
        try:
            PersonFields.model_validate(body)
        except ValidationError as exc:
            for e in exc.errors():
                where = ".".join(str(p) for p in e["loc"])
                out.problems.append(f"row {number}" + (f", column {where}" if where else "") + f": {e['msg']}")
            bad = True
        if not bad:
            out.rows.append(Row(number, person_id, body))
    if not out.problems:
        _in_order(out)
    return out


def _in_order(checked: Checked) -> None:
    """Managers named in the file before the people they manage, the file's order otherwise
    (a management cycle inside the file is a problem)."""
    in_file = {r.id for r in checked.rows}
    order: list[Row] = []
    placed: set[str] = set()
    pending = checked.rows
    while pending:
        unplaced = in_file - placed
        blocked = [r.body.get("manager_id") in unplaced or r.body.get("manager_id") == r.id for r in pending]
        waiting = [r for r, b in zip(pending, blocked, strict=True) if b]
        ready = [r for r, b in zip(pending, blocked, strict=True) if not b]
        if not ready:
            for r in waiting:
                checked.problems.append(
                    f"row {r.number}, column manager_id: {r.body['manager_id']} is in a management cycle"
                )
            return
        order += ready
        placed |= {r.id for r in ready}
        pending = waiting
    checked.rows = order


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(f"error: {path} is not UTF-8: {exc}", REFUSED)


def _write_person(client: ticketflow_client.Client, row: Row) -> str:
    try:
        client.request("PUT", f"/people/{seg(row.id)}", json=row.body)
        return "updated"
    except ticketflow_client.NotFound:
        client.request("POST", "/people", json={"id": row.id, **row.body})
        return "created"


@people.command("import")
def import_people(
    path: CsvFile,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the file only; send nothing.")] = False,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Add or replace people from a CSV file (columns: id, name, roles, regions, groups, team,
    manager_id, active, skills, home_lat, home_lon, capacity, seniority, features,
    working_hours, out_of_office). Every row is checked first; any problem: nothing is sent."""
    checked = check_people(_read(path))
    if checked.problems:
        typer.echo(f"{path}: {len(checked.problems)} problem(s), nothing imported", err=True)
        for line in checked.problems:
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(REFUSED)
    if dry_run:
        typer.echo(f"{path}: {len(checked.rows)} people, every row valid (nothing sent: --dry-run)")
        return
    if not checked.rows:
        fail(f"{path}: no people in the file", REFUSED)
    done: dict[str, int] = {"created": 0, "updated": 0}
    with connected(api_url, api_key) as client:
        for row in checked.rows:
            try:
                what = _write_person(client, row)
            except ticketflow_client.Unauthorized:
                raise
            except ticketflow_client.TicketflowError as exc:
                typer.echo(f"row {row.number} {row.id}: refused", err=True)
                for line in problems(exc):
                    typer.echo(f"  {line}", err=True)
                written = done["created"] + done["updated"]
                fail(
                    f"{path}: stopped at row {row.number}; {written} written before it "
                    "(fix the row and run the import again: it replaces the same people)",
                    REFUSED,
                )
            done[what] += 1
            typer.echo(f"row {row.number} {row.id}: {what}")
    typer.echo(f"{path}: {done['created']} created, {done['updated']} updated")


@customers.command("import")
def import_customers(
    path: CsvFile,
    as_json: JsonOut = False,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Import customers from a CSV file (docs/customers.md lists the columns): every row or none;
    each problem is printed with its row and column."""
    text = _read(path)
    with connected(api_url, api_key) as client:
        result = client.request("POST", "/customers/import", content=text, content_type="text/csv").json()
    if as_json:
        echo_json(result)
        return
    for c in result["customers"]:
        ref = f" ({c['external_id']})" if c.get("external_id") else ""
        typer.echo(f"row {c['row']}{ref}: {c['id']}")
    typer.echo(
        f"{path}: {result['imported']} customers, {result['identities']} identities imported "
        f"(import {result['import_id']})"
    )
