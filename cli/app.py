"""The ops CLI's commands (Typer): ``python -m cli --help``."""

import asyncio
from typing import Annotated

import typer
from temporalio.service import RPCError

from cli import rebuild
from models.db import Database
from models.settings import get_settings
from workers.client import connect

app = typer.Typer(
    help="Ticketflow operations. Connects with the service's settings (TICKETFLOW_DATABASE_URL, "
    "TICKETFLOW_TEMPORAL_ADDRESS, TICKETFLOW_TEMPORAL_NAMESPACE…).",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def ops() -> None:
    """Ticketflow operations."""


@app.command("rebuild-read-model")
def rebuild_read_model(
    ticket: Annotated[
        list[str] | None, typer.Option("--ticket", help="A ticket id to rebuild (repeat the option for several).")
    ] = None,
    all_tickets: Annotated[
        bool, typer.Option("--all", help="Every ticket with a workflow in Temporal (the default without --ticket).")
    ] = False,
    query: Annotated[
        str | None,
        typer.Option("--query", help="Narrow --all by a visibility query, e.g. 'TicketRegion = \"east\"'."),
    ] = None,
) -> None:
    """Re-project tickets into the read model (ticket and ticket_event rows) from their workflows'
    histories, every run of each; nothing is sent again (no customer message, no webhook). One
    line per ticket, then a summary; the exit status is 1 when any ticket failed or was only
    partly rebuilt (2 when Temporal cannot be reached or refuses the query)."""
    if ticket and (all_tickets or query):
        raise typer.BadParameter("name tickets with --ticket, or use --all [--query], not both")
    try:
        summary = asyncio.run(_rebuild(ticket or None, query))
    except (RPCError, RuntimeError) as exc:  # Temporal unreachable, or a query it refuses
        typer.echo(f"rebuild-read-model: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(summary.line())
    if not summary.ok:
        raise typer.Exit(1)


async def _rebuild(ticket_ids: list[str] | None, query: str | None) -> rebuild.Summary:
    settings = get_settings()
    client = await connect(settings.temporal_address, settings.temporal_namespace)
    db = Database(settings.database_url, settings.db_statement_timeout_ms)
    try:
        ids = ticket_ids if ticket_ids is not None else rebuild.ticket_ids(client, query)
        return await rebuild.rebuild_many(client, db, ids, typer.echo)
    finally:
        await db.dispose()


def main() -> None:
    """The ``ticketflow`` console script and ``python -m cli``."""
    app()
