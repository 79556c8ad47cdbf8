"""``ticketflow replay PATH...``: do recorded histories replay against this code?

Each JSON history (a file, or every ``*.json`` under a directory) is replayed by
``temporalio.worker.Replayer`` with the workflows the worker registers
(``workflows.registry.WORKFLOWS``), all in one replayer run as ``tests/workflows/test_replay.py``
does. One line per history; a nondeterminism error names the command that no longer matches.
"""

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.registry import WORKFLOWS


@dataclass(frozen=True)
class Outcome:
    path: Path
    error: str | None  # None: it replays

    def line(self) -> str:
        return f"ok    {self.path}" if self.error is None else f"FAIL  {self.path}: {self.error}"


def histories(paths: Iterable[Path]) -> list[Path]:
    """The JSON files named, and those under the directories named, each once, in order."""
    found: dict[Path, None] = {}
    for path in paths:
        for file in sorted(path.rglob("*.json")) if path.is_dir() else [path]:
            found.setdefault(file, None)
    return list(found)


async def replay(files: list[Path]) -> list[Outcome]:
    """Replay every file; a file that is not a history is a failure too."""
    outcomes: dict[Path, Outcome] = {}
    loaded: dict[str, Path] = {}
    runs: list[WorkflowHistory] = []
    for file in files:
        try:
            history = WorkflowHistory.from_json(f"replay-{file.stem}", file.read_text(encoding="utf-8"))
            run_id = history.run_id
        except Exception as exc:  # noqa: BLE001 - unreadable, not JSON, not a history: that file's line
            outcomes[file] = Outcome(file, f"not a workflow history: {type(exc).__name__}: {exc}")
            continue
        if run_id in loaded:
            outcomes[file] = Outcome(file, f"the same run as {loaded[run_id]}")
            continue
        loaded[run_id] = file
        runs.append(history)
        outcomes[file] = Outcome(file, "not replayed")

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in runs:
            yield history

    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    async with replayer.workflow_replay_iterator(each()) as results:
        async for result in results:
            file = loaded[result.history.run_id]
            failure = result.replay_failure
            outcomes[file] = Outcome(file, None if failure is None else f"{type(failure).__name__}: {failure}")
    return [outcomes[f] for f in files]
