"""The CLI's way to the API: every command that reads or changes tickets, templates, people or
customers goes through the HTTP API with the typed client (``clients/python/ticketflow_client``),
so authentication, authorization, signing and audit stay in the API.

``--api-url`` / ``--api-key`` (or ``TICKETFLOW_API_URL`` / ``TICKETFLOW_API_KEY``) on each such
command. Exit statuses: 0 done, 1 the API refused or failed the operation (its status, field and
reason are printed), 2 a usage or connection error (no key, an unknown key, no answer).
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import httpx
import ticketflow_client
import typer

DEFAULT_URL = "http://localhost:8000"

ApiUrl = Annotated[
    str,
    typer.Option("--api-url", envvar="TICKETFLOW_API_URL", help="The Ticketflow API.", show_default=True),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="TICKETFLOW_API_KEY", help="Your API key (sent as X-API-Key).", show_default=False
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of text.")]

USAGE, REFUSED = 2, 1


def fail(message: str, code: int = REFUSED) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def problems(error: ticketflow_client.TicketflowError) -> list[str]:
    """The API's answer as lines: the status and code, then each field and its reason."""
    body = error.body if isinstance(error.body, dict) else {}
    head = f"error: HTTP {error.status}" + (f" {error.code}" if error.code else "")
    detail = body.get("detail")
    if isinstance(detail, list):
        lines = [head]
        for p in detail:
            if not isinstance(p, dict):
                continue
            if "row" in p:  # a CSV import: row and column
                where = f"row {p['row']}" + (f", column {p['column']}" if p.get("column") else "")
            else:
                where = ".".join(str(part) for part in p.get("loc", [])) or "body"
            lines.append(f"  {where}: {p.get('msg')}")
        return lines
    field = body.get("field")
    line = f"{head}: " + (f"{field}: " if field else "") + str(error.detail)
    if "allowed_actions" in body:  # an action the ticket's status does not allow
        line += f" (status {body.get('status')}; allowed: {', '.join(body['allowed_actions'] or []) or 'none'})"
    return [line]


@contextmanager
def connected(url: str, key: str | None) -> Iterator[ticketflow_client.Client]:
    """A client for the command; every way it can fail ends the command with its exit status."""
    if not key:
        fail("error: no API key: pass --api-key or set TICKETFLOW_API_KEY", USAGE)
    try:
        with ticketflow_client.Client(url, key, max_retries=2) as client:
            yield client
    except ticketflow_client.Unauthorized as exc:
        fail("\n".join(problems(exc)), USAGE)
    except ticketflow_client.TicketflowError as exc:
        fail("\n".join(problems(exc)), REFUSED)
    except httpx.InvalidURL as exc:
        fail(f"error: --api-url {url!r}: {exc}", USAGE)
    except httpx.TransportError as exc:
        fail(f"error: cannot reach the API at {url}: {type(exc).__name__}: {exc}", USAGE)


def seg(value: str) -> str:
    """One path segment, escaped."""
    return quote(value, safe="")


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
