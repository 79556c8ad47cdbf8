"""``ticketflow templates import|export|validate|list``: process templates through the API."""

from pathlib import Path
from typing import Annotated, Any

import ticketflow_client
import typer
import yaml

from cli.api import (
    DEFAULT_URL,
    REFUSED,
    ApiKey,
    ApiUrl,
    JsonOut,
    connected,
    echo_json,
    problems,
    seg,
)

app = typer.Typer(help="Import, export and validate process templates (through the API).", no_args_is_help=True)

Files = Annotated[
    list[Path],
    typer.Argument(help="Template YAML files (templates/*.yaml shows the format).", exists=True, dir_okay=False),
]


def _each(files: list[Path], api_url: str, api_key: str | None, send: Any) -> None:
    """``send(client, path)`` for each file, one line each; exit 1 when any was refused."""
    failed = 0
    with connected(api_url, api_key) as client:
        for path in files:
            try:
                typer.echo(f"{path}: {send(client, path)}")
            except ticketflow_client.Unauthorized:
                raise
            except ticketflow_client.TicketflowError as exc:
                failed += 1
                typer.echo(f"{path}: refused", err=True)
                for line in problems(exc):
                    typer.echo(f"  {line}", err=True)
            except ValueError as exc:  # not YAML, not UTF-8
                failed += 1
                typer.echo(f"{path}: {exc}", err=True)
    if failed:
        raise typer.Exit(REFUSED)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8: {exc}") from None


@app.command("import")
def import_templates(files: Files, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Publish each file as the template's next version (unchanged: the latest stays)."""

    def send(client: ticketflow_client.Client, path: Path) -> str:
        response = client.request("POST", "/templates/import", content=_read(path), content_type="application/yaml")
        version = response.json()
        if response.status_code == 201:
            return f"published {version['key']} version {version['version']}"
        return f"unchanged: {version['key']} version {version['version']} is the same"

    _each(files, api_url, api_key, send)


@app.command("validate")
def validate(files: Files, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Check each file without publishing it; every problem is listed with where it is."""

    def send(client: ticketflow_client.Client, path: Path) -> str:
        try:
            data = yaml.safe_load(_read(path))
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("not a template: the YAML is not a mapping")
        client.request("POST", "/templates/validate", json=_plain(data))
        return f"valid ({data.get('key')})"

    _each(files, api_url, api_key, send)


def _plain(value: Any) -> Any:
    """YAML's dates and times as the strings JSON carries."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


@app.command("export")
def export(
    key: Annotated[str, typer.Argument(help="The template's key.")],
    version: Annotated[int | None, typer.Option(min=1, help="A version (default: the latest).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")] = None,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """A published template as YAML (what ``templates import`` takes back)."""
    params = {"version": version} if version is not None else None
    with connected(api_url, api_key) as client:
        text = client.request("GET", f"/templates/{seg(key)}/export", params=params).text
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"{key}: written to {output}", err=True)


@app.command("list")
def list_templates(as_json: JsonOut = False, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """The latest version of every template."""
    with connected(api_url, api_key) as client:
        found: list[dict[str, Any]] = client.request("GET", "/templates").json()
    if as_json:
        echo_json(found)
        return
    for t in found:
        typer.echo(f"{t.get('key')}  v{t.get('version')}  {t.get('name', '')}")
