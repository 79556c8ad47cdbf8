"""The ops CLI's commands (Typer): ``python -m cli --help``; docs/cli.md is the reference.

Tickets, templates, people and customers go through the API (``cli/api.py``); the commands
that run workflow code (``sla-scenario``, ``replay``) run it here; ``rebuild-read-model`` and
``versioning`` connect to Temporal with the service's settings.
"""

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
import yaml
from pydantic import ValidationError

from cli import imports, templates, tickets
from models.calendar import BusinessCalendar
from models.ticket import Priority

if TYPE_CHECKING:  # the commands import the workflow code, the API's services and Temporal when run
    from cli import rebuild
    from models.template import TemplateVersion

app = typer.Typer(
    help="Ticketflow operations. Connects with the service's settings (TICKETFLOW_DATABASE_URL, "
    "TICKETFLOW_TEMPORAL_ADDRESS, TICKETFLOW_TEMPORAL_NAMESPACE…).",
    no_args_is_help=True,
    add_completion=False,
)


app.add_typer(tickets.app, name="tickets")
app.add_typer(templates.app, name="templates")
app.add_typer(imports.people, name="people")
app.add_typer(imports.customers, name="customers")

PRESETS = Path(__file__).resolve().parent.parent / "templates"


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
    from temporalio.service import RPCError

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


async def _rebuild(ticket_ids: list[str] | None, query: str | None) -> "rebuild.Summary":
    from cli import rebuild
    from models.db import Database
    from models.settings import get_settings
    from workers.client import connect

    settings = get_settings()
    client = await connect(settings.temporal_address, settings.temporal_namespace)
    db = Database(settings.database_url, settings.db_statement_timeout_ms)
    try:
        ids = ticket_ids if ticket_ids is not None else rebuild.ticket_ids(client, query)
        return await rebuild.rebuild_many(client, db, ids, typer.echo)
    finally:
        await db.dispose()


def _template(name: str) -> "TemplateVersion":
    """A YAML file, or a preset's key (templates/<key>.yaml), checked as the API checks it."""
    from api.errors import ProblemList
    from api.services import templates as template_service
    from models.template import TemplateVersion

    path = Path(name)
    if not path.is_file():
        preset = PRESETS / f"{name}.yaml"
        if not preset.is_file() or "/" in name:
            known = ", ".join(sorted(p.stem for p in PRESETS.glob("*.yaml")))
            raise typer.BadParameter(f"no file {name!r} and no preset of that key (presets: {known})")
        path = preset
    try:
        spec = template_service.parse_yaml(path.read_text(encoding="utf-8"))
        template_service._raise_problems(template_service.check(spec))
    except ProblemList as exc:
        typer.echo(f"{path}: not a valid template", err=True)
        for p in exc.problems:
            typer.echo(f"  {'.'.join(str(x) for x in p['loc'][1:]) or 'template'}: {p['msg']}", err=True)
        raise typer.Exit(1) from None
    except UnicodeDecodeError as exc:
        raise typer.BadParameter(f"{path} is not UTF-8: {exc}") from None
    return TemplateVersion(key=spec.key, version=1, spec=spec)


def _calendar(path: Path) -> BusinessCalendar:
    try:
        return BusinessCalendar.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (ValidationError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"{path}: not a business calendar: {exc}", param_hint="--calendar") from None


@app.command("sla-scenario")
def sla_scenario(
    template: Annotated[str, typer.Argument(help="A preset's key (templates/<key>.yaml) or a template YAML file.")],
    start: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
            help="When the ticket is created, in the region's local time (default: now).",
        ),
    ] = None,
    region: Annotated[str, typer.Option(help="The region whose business calendar counts.")] = "east",
    priority: Annotated[Priority, typer.Option(help="The ticket's priority.")] = Priority.NORMAL,
    calendar: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="A business calendar (JSON or YAML) instead of the region's."),
    ] = None,
    horizon_days: Annotated[
        int, typer.Option("--horizon-days", min=1, max=3660, help="Stop this many days after the start.")
    ] = 90,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of text.")] = False,
) -> None:
    """Run the template's ticket on Temporal's time-skipping test server, with nobody acting on
    it, and print when each SLA milestone (reminder, breach, escalation) fires, in the region's
    local time. Takes seconds; nothing outside a temporary directory is touched."""
    from cli import scenario

    version = _template(template)
    cal = _calendar(calendar) if calendar else None
    when = start or datetime.now(UTC)  # a --start is the region's local time (or --calendar's)
    try:
        result = asyncio.run(scenario.run(version, region, when, priority, timedelta(days=horizon_days), cal))
    except scenario.ScenarioError as exc:
        typer.echo(f"sla-scenario: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2, ensure_ascii=False))
        return
    for line in scenario.lines(result):
        typer.echo(line)


@app.command("replay")
def replay_histories(
    paths: Annotated[
        list[Path], typer.Argument(help="History JSON files, or directories of them (searched recursively).")
    ],
) -> None:
    """Replay recorded workflow histories against this code: one line per history; the exit
    status is 1 when any does not replay (2 when there is nothing to replay)."""
    from cli import replay

    missing = [p for p in paths if not p.exists()]
    if missing:
        raise typer.BadParameter(f"no such file or directory: {', '.join(map(str, missing))}")
    files = replay.histories(paths)
    if not files:
        typer.echo("replay: no *.json histories there", err=True)
        raise typer.Exit(2)
    outcomes = asyncio.run(replay.replay(files))
    for outcome in outcomes:
        typer.echo(outcome.line())
    failed = sum(o.error is not None for o in outcomes)
    typer.echo(f"{len(outcomes)} histories: {len(outcomes) - failed} replay, {failed} failed")
    if failed:
        raise typer.Exit(1)


@app.command(
    "versioning",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def versioning(ctx: typer.Context) -> None:
    """Worker Versioning (describe, set-current, ramp, drained, predating): the arguments go to
    ``python -m workers.versioning`` (``ticketflow versioning --help`` lists them; it connects to
    Temporal first)."""
    raise typer.Exit(asyncio.run(_versioning(ctx.args or ["--help"])))


async def _versioning(argv: list[str]) -> int:
    from temporalio.client import Client
    from temporalio.service import RPCError

    from models.settings import get_settings
    from workers import versioning as commands
    from workers.client import connect

    settings = get_settings()
    if {"-h", "--help"} & set(argv):  # argparse answers (and exits) before it needs the client
        return await commands.command(argv, settings, cast("Client", None), out=sys.stdout)
    try:
        client = await connect(
            settings.temporal_address, settings.temporal_namespace, settings.temporal_connect_timeout_s
        )
        return await commands.command(argv, settings, client, out=sys.stdout)
    except (ValueError, TimeoutError, RuntimeError, RPCError) as exc:  # refused, unreachable, not current…
        typer.echo(f"versioning: {type(exc).__name__}: {exc}", err=True)
        return 2


def main() -> None:
    """The ``ticketflow`` console script and ``python -m cli``."""
    app()
