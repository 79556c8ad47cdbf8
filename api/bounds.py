"""Integer bounds at the edge: a number outside them is a 422 naming the parameter, never a
database overflow (a 500). Shared by the routers; the database columns are 32-bit integers
(ids, versions) or 64-bit (the stock ledger)."""

from typing import Annotated, Any

from fastapi import Path, Query

MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
# The deepest a client may page with an offset; further is keyset pagination's job.
MAX_OFFSET = 1_000_000

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"Rows to skip (at most {MAX_OFFSET})")]
VersionPath = Annotated[int, Path(ge=1, le=MAX_INT32, description="A version number (1, 2, …)")]
VersionQuery = Annotated[int | None, Query(ge=1, le=MAX_INT32, description="A version number; omitted: the latest")]
IdPath = Annotated[int, Path(ge=1, le=MAX_INT32)]

# How deep a JSON or YAML document may nest (objects and arrays inside one another).
MAX_DEPTH = 32


def find_nul(value: Any) -> tuple[list[str | int], bool] | None:
    """Where the first NUL character is in a parsed JSON/YAML value: the path to the string, or
    to the key (then True). Iterative: any depth."""
    todo: list[tuple[list[str | int], Any]] = [([], value)]
    while todo:
        path, item = todo.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path, False
        elif isinstance(item, dict):
            for k, v in item.items():
                if isinstance(k, str) and "\x00" in k:
                    return [*path, shown(k)], True
                todo.append(([*path, k if isinstance(k, str | int) else str(k)], v))
        elif isinstance(item, list):
            todo.extend(([*path, i], v) for i, v in enumerate(item))
    return None


def shown(text: str) -> str:
    """A key or name fit for an error message: NULs spelled out, at most 100 characters."""
    return text.replace("\x00", "\\u0000")[:100]
