"""A worker that SIGKILLs itself at a chosen point: ``python -m tests.faults.killer``.

Test-only entrypoint for tests/faults/: the production worker (``workers.main.main``, what
``python -m workers`` runs) with one named function wrapped, so that the process kills itself
with SIGKILL — no ``finally``, no graceful shutdown, no result sent to Temporal — just before
the function runs or just after it returned::

    python -m tests.faults.killer --marker /tmp/x/died store.inventory.reserve:after
    python -m tests.faults.killer --marker /tmp/x/died --match Channel.SMS \
        activities.channels.webhook.WebhookChannel.send:after

``store.inventory.reserve:after`` dies after the reservation's transaction committed and before
the activity returns its result (Temporal retries the activity on another worker);
``store.statements.insert_once:after`` dies after the statement's INSERT ran and before its
transaction commits (PostgreSQL rolls it back when the connection drops);
``…WebhookChannel.send:after`` with ``--match Channel.SMS`` dies after the SMS provider took a
message and before the outbox row is marked sent (``--match`` may be given again: every string
must be in the call's arguments, a ticket id say; ``--settle S`` waits S seconds at the point
before dying, letting the rest of the process finish what it is doing, so that the kill finds
only the one thing in flight). Callers look the wrapped name up at call time
(``inventory.reserve(...)``, ``settle(...)``, ``adapter.send(...)``), which is what makes
replacing the module or class attribute enough: production code has no hook of its own. (An
``@activity.defn`` function itself cannot be wrapped this way: the worker registers the
definition, not the module attribute.)

The marker file is created (O_EXCL) just before dying and holds what died where, as JSON: the
process dies once, even if the function is called again, and the test can tell the kill
happened at the chosen point. Configuration comes from ``TICKETFLOW_*`` variables as for
``python -m workers`` (a short ``TICKETFLOW_NOTIFY_LEASE_S``, say, so a row the dead worker
claimed is taken again within seconds). One test-side change: the worker keeps no sticky
workflow cache (``max_cached_workflows=0``), so after the kill the ticket's next workflow task
goes to the task queue every worker polls instead of waiting ~10 s on the dead worker's sticky
queue (latency only: the histories are the same).
"""

import argparse
import asyncio
import functools
import importlib
import inspect
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

WHEN = ("before", "after")


def die(marker: Path, target: str, when: str, args: tuple[Any, ...]) -> bool:
    """SIGKILL this process, once: False (and no kill) when the marker says it already died."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    note = {
        "target": target,
        "when": when,
        "pid": os.getpid(),
        "at": time.time(),
        "args": [repr(a)[:300] for a in args],
    }
    os.write(fd, json.dumps(note).encode())
    os.fsync(fd)
    os.close(fd)
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # pragma: no cover - never reached: SIGKILL has ended the process
    return True


def resolve(target: str) -> tuple[Any, str]:
    """``pkg.module.attr`` or ``pkg.module.Class.method``: the owner (module or class) and the name."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for name in parts[i:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1]
    raise SystemExit(f"{target}: no such module")


def wrap(target: str, when: str, marker: Path, match: Sequence[str] = (), settle_s: float = 0.0) -> Callable[..., Any]:
    """Replace ``target`` (an async function or method) by one that dies ``when`` it runs —
    only on a call whose arguments' repr contains every ``match`` string; ``settle_s``: wait
    that long at the point first (the rest of the process goes on meanwhile)."""
    owner, name = resolve(target)
    original = getattr(owner, name)
    if not inspect.iscoroutinefunction(original):
        raise SystemExit(f"{target} is not an async function")

    def wanted(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        text = repr(args) + repr(kwargs)
        return all(m in text for m in match) and not marker.exists()

    async def point(args: tuple[Any, ...]) -> None:
        if settle_s:
            await asyncio.sleep(settle_s)
        die(marker, target, when, args)

    @functools.wraps(original)
    async def dying(*args: Any, **kwargs: Any) -> Any:
        if when == "before" and wanted(args, kwargs):
            await point(args)
        result = await original(*args, **kwargs)
        if when == "after" and wanted(args, kwargs):
            await point(args)
        return result

    setattr(owner, name, dying)
    return dying


def no_sticky_cache() -> None:
    """``workers.main.build_worker`` builds its Worker with ``max_cached_workflows=0``."""
    from temporalio.worker import Worker

    import workers.main

    workers.main.Worker = functools.partial(Worker, max_cached_workflows=0)  # type: ignore[misc]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.killer", description=__doc__.splitlines()[0])
    parser.add_argument("point", help="module.function:before|after (or module.Class.method:…)")
    parser.add_argument("--marker", type=Path, required=True, help="created just before dying (O_EXCL)")
    parser.add_argument(
        "--match", action="append", default=[], help="die only on a call whose arguments' repr contains this"
    )
    parser.add_argument("--settle", type=float, default=0.0, help="seconds to wait at the point before dying")
    ns = parser.parse_args(argv)
    target, _, when = ns.point.rpartition(":")
    if when not in WHEN or not target:
        parser.error(f"point must be module.function:before|after, not {ns.point!r}")
    wrap(target, when, ns.marker, ns.match, ns.settle)
    no_sticky_cache()
    from workers.main import main as worker_main

    print(f"killer: armed {target}:{when} (match {ns.match}, settle {ns.settle}s, marker {ns.marker})", flush=True)
    worker_main()


if __name__ == "__main__":
    main()
