"""``make lint`` as part of ``make test`` (and so of CI): ruff's lint rules and formatting over
the whole tree, and mypy (strict on domain/ and workflows/, pyproject.toml's ``[tool.mypy]``).

Each tool runs from the repository root with this interpreter (``python -m``), whatever
virtualenv that is; a failure shows the tool's own report. mypy keeps its cache in
``.mypy_cache`` and ruff in ``.ruff_cache``, so a run after the first takes about a second.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600  # a cold mypy cache on a slow machine; warm, all three take about a second

CHECKS = {
    "ruff check": ["ruff", "check", "."],
    "ruff format": ["ruff", "format", "--check", "."],
    "mypy": ["mypy"],  # the files and the strictness come from pyproject.toml
}


@pytest.mark.parametrize("args", list(CHECKS.values()), ids=list(CHECKS))
def test_the_tree_passes(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    report = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, f"`{' '.join(args)}` found problems (exit {done.returncode}):\n{report}"
