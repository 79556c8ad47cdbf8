"""The catalog of activities a template's ``action`` node may call.

A developer adds one module under ``activities/`` with a function like::

    @ticket_activity("erp.create_purchase_order", "Raise a purchase order in the ERP")
    async def create_purchase_order(request: PurchaseOrderIn) -> PurchaseOrderOut: ...

Typed Pydantic input and output; the name is what templates use. Workers register every
activity of every module in ``activities/`` automatically (``activities/registry.py``), and
template validation rejects an action naming an activity that is not in the catalog.

A catalog activity heartbeats while it runs (``with_heartbeats``: every ``HEARTBEAT_EVERY``),
and the ``action`` node schedules it with a heartbeat timeout (``workflows/nodes/action.py``):
when its worker dies, Temporal retries it elsewhere within that timeout instead of after the
node's whole start-to-close timeout (5 minutes by default). The function itself does nothing
for it; an activity that may run long should still be idempotent (its retry may follow a
commit).
"""

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel
from temporalio import activity

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    fn: Callable[..., Any]
    input_model: type[BaseModel]
    output_model: type[BaseModel] | None


_CATALOG: dict[str, CatalogEntry] = {}

HEARTBEAT_EVERY = timedelta(seconds=3)


def with_heartbeats(fn: Callable[[Any], Awaitable[Any]], every: timedelta = HEARTBEAT_EVERY) -> Callable[..., Any]:
    """``fn`` with a heartbeat every ``every`` while it runs (same signature and type hints, so
    Temporal converts its argument as before). Cancelling the activity cancels ``fn``."""

    @functools.wraps(fn)
    async def beating(arg: Any) -> Any:
        work = asyncio.ensure_future(fn(arg))  # the activity's context (info, heartbeat) goes with it
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=every.total_seconds())
                if done:
                    return work.result()
                activity.heartbeat()
        finally:
            if not work.done():  # the activity was cancelled: so is the work, before the attempt ends
                work.cancel()
                await asyncio.wait({work})

    return beating


def ticket_activity(name: str, description: str = "") -> Callable[[F], F]:
    def register(fn: F) -> F:
        hints = get_type_hints(fn)
        params = [p for p in hints if p != "return"]
        if len(params) != 1 or not issubclass(hints[params[0]], BaseModel):
            raise TypeError(f"{name}: a ticket activity takes exactly one Pydantic model argument")
        output = hints.get("return")
        output_model = output if isinstance(output, type) and issubclass(output, BaseModel) else None
        defined = activity.defn(name=name)(with_heartbeats(fn))
        _CATALOG[name] = CatalogEntry(
            name, description or (fn.__doc__ or "").strip(), defined, hints[params[0]], output_model
        )
        return defined

    return register


def catalog() -> dict[str, CatalogEntry]:
    from activities import registry  # noqa: F401, PLC0415 - importing it discovers every module

    return dict(_CATALOG)
