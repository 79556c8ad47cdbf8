"""``ticketflow tickets list|show|act|event``: tickets through the API, as the caller's key allows."""

import json
from datetime import datetime
from typing import Annotated, Any

import typer

from cli.api import DEFAULT_URL, ApiKey, ApiUrl, JsonOut, connected, echo_json, seg

app = typer.Typer(help="List, show and act on tickets (through the API).", no_args_is_help=True)

MAX_LIST = 10_000
EVENTS_PAGE = 500


def pairs(values: list[str] | None, option: str) -> dict[str, Any]:
    """``name=value`` options as a dict; a value that reads as JSON (a number, true, a list…) is
    taken as such, anything else as text."""
    out: dict[str, Any] = {}
    for item in values or []:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected name=value, got {item!r}", param_hint=option)
        try:
            out[name.strip()] = json.loads(raw)
        except ValueError:
            out[name.strip()] = raw
    return out


@app.command("list")
def list_tickets(
    status: Annotated[str | None, typer.Option(help="new, assigned, in_progress, resolved, closed…")] = None,
    region: Annotated[str | None, typer.Option(help="A region code of yours.")] = None,
    priority: Annotated[str | None, typer.Option(help="low, normal, high, urgent.")] = None,
    assignee: Annotated[str | None, typer.Option(help="A person's id.")] = None,
    ticket_type: Annotated[str | None, typer.Option("--type", help="A template key.")] = None,
    breached: Annotated[
        bool | None, typer.Option("--breached/--not-breached", help="Only tickets that did (not) miss an SLA target.")
    ] = None,
    customer: Annotated[str | None, typer.Option(help="A customer's id.")] = None,
    asset: Annotated[str | None, typer.Option(help="An asset's id.")] = None,
    created_from: Annotated[datetime | None, typer.Option(help="Created at or after (ISO 8601).")] = None,
    created_to: Annotated[datetime | None, typer.Option(help="Created before (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIST, help="At most this many tickets.")] = 50,
    as_json: JsonOut = False,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Tickets of your regions, newest first, one line each."""
    filters = {
        "status": status,
        "region": region,
        "priority": priority,
        "assignee": assignee,
        "ticket_type": ticket_type,
        "sla_breached": breached,
        "customer_id": customer,
        "asset_id": asset,
        "created_from": created_from,
        "created_to": created_to,
    }
    with connected(api_url, api_key) as client:
        found = []
        for ticket in client.list_tickets(limit=min(limit, 200), **filters):
            found.append(ticket)
            if len(found) >= limit:
                break
    if as_json:
        echo_json([t.model_dump(mode="json") for t in found])
        return
    if not found:
        typer.echo("no tickets")
        return
    rows = [
        (
            t.id,
            t.status,
            t.priority,
            t.region,
            t.ticket_type,
            t.assignee or "-",
            "breached" if t.sla_breached else "",
            f"{t.created_at:%Y-%m-%d %H:%M}" if t.created_at else "",
            t.title,
        )
        for t in found
    ]
    head = ("ID", "STATUS", "PRIORITY", "REGION", "TYPE", "ASSIGNEE", "SLA", "CREATED (UTC)", "TITLE")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head) - 1)]
    for r in [head, *rows]:
        typer.echo("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + str(r[-1]))


@app.command("show")
def show(
    ticket_id: Annotated[str, typer.Argument(help="The ticket's id.")],
    events: Annotated[bool, typer.Option("--events", help="Also its history, oldest first.")] = False,
    as_json: JsonOut = False,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """One ticket: its status, who holds it, its fields and the actions you may take."""
    with connected(api_url, api_key) as client:
        ticket = client.get_ticket(ticket_id)
        history = _events(client, ticket_id) if events else []
    if as_json:
        echo_json({**ticket.raw, "events": history} if events else ticket.raw)
        return
    typer.echo(f"{ticket.id}  {ticket.title}")
    for label, value in (
        ("status", ticket.status),
        ("priority", ticket.priority),
        ("region", ticket.region),
        ("type", ticket.ticket_type),
        ("assignee", ticket.assignee or "-"),
        ("customer", ticket.customer_id),
        ("asset", ticket.asset_id),
        ("resolution", ticket.resolution),
        ("created", ticket.created_at.isoformat() if ticket.created_at else None),
        ("updated", ticket.updated_at.isoformat() if ticket.updated_at else None),
        ("closed", ticket.closed_at.isoformat() if ticket.closed_at else None),
        ("actions", ", ".join(ticket.allowed_actions) or "none"),
    ):
        if value is not None:
            typer.echo(f"  {label + ':':<12}{value}")
    for name, value in ticket.fields.items():
        typer.echo(f"  field {name}: {json.dumps(value, ensure_ascii=False, default=str)}")
    for e in history:
        moved = f"{e.get('from_status') or '-'} → {e.get('to_status')}"
        typer.echo(f"  #{e.get('seq')} {e.get('at')} {e.get('action')} by {e.get('actor_id')}  {moved}")


def _events(client: Any, ticket_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        params = {"after_seq": after, "limit": EVENTS_PAGE}
        page = client.request("GET", f"/tickets/{seg(ticket_id)}/events", params=params).json()
        out += page["items"]
        after = page.get("next_after_seq")
    return out


@app.command("act")
def act(
    ticket_id: Annotated[str, typer.Argument(help="The ticket's id.")],
    action: Annotated[str, typer.Argument(help="claim, start, resolve, approve, reopen, close, comment…")],
    field: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="A body field as name=value (JSON values are read as JSON); repeat."),
    ] = None,
    body: Annotated[str | None, typer.Option(help="The whole body as a JSON object (merged under --set).")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Repeating the command with the same key returns its first outcome.")
    ] = None,
    as_json: JsonOut = False,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Take an action on a ticket as the key's owner; prints the ticket after it."""
    payload: dict[str, Any] = {}
    if body is not None:
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--body") from None
        if not isinstance(payload, dict):
            raise typer.BadParameter("a JSON object is needed", param_hint="--body")
    payload.update(pairs(field, "--set"))
    with connected(api_url, api_key) as client:
        ticket = client.act(ticket_id, action, idempotency_key=idempotency_key, **payload)
    if as_json:
        echo_json(ticket.raw)
        return
    actions = ", ".join(ticket.allowed_actions) or "none"
    typer.echo(f"{ticket.id}: {action} done, now {ticket.status} (assignee {ticket.assignee or '-'}; next: {actions})")


@app.command("event")
def event(
    ticket_id: Annotated[str, typer.Argument(help="The ticket's id.")],
    name: Annotated[str, typer.Argument(help="An event the ticket's template declares.")],
    field: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="An event field as name=value; repeat.")
    ] = None,
    text: Annotated[str | None, typer.Option(help="A message to go with it.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="The same key again sends it once.")] = None,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Send an event the ticket's template declares (202: the workflow took it)."""
    fields = pairs(field, "--set")
    with connected(api_url, api_key) as client:
        client.send_event(ticket_id, name, fields=fields or None, text=text, idempotency_key=idempotency_key)
    typer.echo(f"{ticket_id}: event {name} accepted")
